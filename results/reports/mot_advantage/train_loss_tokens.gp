# sweep plot mot_advantage --metric train/loss --x tokens --band minmax: redraw with  gnuplot train_loss_tokens.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 800,500 noenhanced font "sans,10"
} else {
  set terminal png size 800,500 noenhanced
}
set output "train_loss_tokens.png"
set grid
set key top right opaque box
set format x "%.3g"
set xlabel "training tokens (step x batch size x sequence length)"
set ylabel "train/loss (nats/token)"
set title "mot_advantage: train/loss (band: min to max over seeds)"
plot "train_loss_tokens.dat" index 0 using 1:6:7 with filledcurves fc rgb "#1f77b4" fs transparent solid 0.2 noborder notitle, \
     "" index 0 using 1:4 with lines lw 2 lc rgb "#1f77b4" dt 1 title "dense (3 seeds)", \
     "" index 1 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 1 using 1:4 with lines lw 2 lc rgb "#d62728" dt 1 title "mot (3 seeds)"
