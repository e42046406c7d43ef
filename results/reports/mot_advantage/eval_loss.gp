# sweep plot mot_advantage --metric eval/loss --x step --band minmax: redraw with  gnuplot eval_loss.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 800,500 noenhanced font "sans,10"
} else {
  set terminal png size 800,500 noenhanced
}
set output "eval_loss.png"
set grid
set key top right opaque box
set xlabel "training step"
set ylabel "eval/loss (nats/token)"
set title "mot_advantage: eval/loss (band: min to max over seeds)"
plot "eval_loss.dat" index 0 using 1:6:7 with filledcurves fc rgb "#1f77b4" fs transparent solid 0.2 noborder notitle, \
     "" index 0 using 1:4 with lines lw 2 lc rgb "#1f77b4" dt 1 title "dense (3 seeds)", \
     "" index 1 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 1 using 1:4 with lines lw 2 lc rgb "#d62728" dt 1 title "mot (3 seeds)"
