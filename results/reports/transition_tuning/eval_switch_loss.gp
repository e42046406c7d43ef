# sweep plot transition_tuning --metric eval_switch/loss --x step --band minmax: redraw with  gnuplot eval_switch_loss.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 800,500 noenhanced font "sans,10"
} else {
  set terminal png size 800,500 noenhanced
}
set output "eval_switch_loss.png"
set grid
set key top right opaque box
set xlabel "training step"
set ylabel "eval_switch/loss (nats/token)"
set title "transition_tuning: eval_switch/loss (band: min to max over seeds)"
plot "eval_switch_loss.dat" index 0 using 1:6:7 with filledcurves fc rgb "#ff7f0e" fs transparent solid 0.2 noborder notitle, \
     "" index 0 using 1:4 with lines lw 2 lc rgb "#ff7f0e" title "mot->switch @300 (2 seeds)"
