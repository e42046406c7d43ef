# sweep plot scaling_experts_groups --metric train/loss --x tokens --band minmax: redraw with  gnuplot train_loss_tokens.gp
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
set title "scaling_experts_groups: train/loss (band: min to max over seeds)"
plot "train_loss_tokens.dat" index 0 using 1:6:7 with filledcurves fc rgb "#1f77b4" fs transparent solid 0.2 noborder notitle, \
     "" index 0 using 1:4 with lines lw 2 lc rgb "#1f77b4" dt 1 title "dense (2 seeds)", \
     "" index 1 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 1 using 1:4 with lines lw 2 lc rgb "#d62728" dt 1 title "mot group_size=1 n_experts=8 (2 seeds)", \
     "" index 2 using 1:6:7 with filledcurves fc rgb "#2ca02c" fs transparent solid 0.2 noborder notitle, \
     "" index 2 using 1:4 with lines lw 2 lc rgb "#2ca02c" dt 1 title "mot group_size=1 n_experts=32 (2 seeds)", \
     "" index 3 using 1:6:7 with filledcurves fc rgb "#ff7f0e" fs transparent solid 0.2 noborder notitle, \
     "" index 3 using 1:4 with lines lw 2 lc rgb "#ff7f0e" dt 1 title "mot group_size=1 n_experts=128 (2 seeds)", \
     "" index 4 using 1:6:7 with filledcurves fc rgb "#9467bd" fs transparent solid 0.2 noborder notitle, \
     "" index 4 using 1:4 with lines lw 2 lc rgb "#9467bd" dt 1 title "mot group_size=8 n_experts=8 (2 seeds)", \
     "" index 5 using 1:6:7 with filledcurves fc rgb "#8c564b" fs transparent solid 0.2 noborder notitle, \
     "" index 5 using 1:4 with lines lw 2 lc rgb "#8c564b" dt 1 title "mot group_size=8 n_experts=32 (2 seeds)", \
     "" index 6 using 1:6:7 with filledcurves fc rgb "#e377c2" fs transparent solid 0.2 noborder notitle, \
     "" index 6 using 1:4 with lines lw 2 lc rgb "#e377c2" dt 1 title "mot group_size=8 n_experts=128 (2 seeds)", \
     "" index 7 using 1:6:7 with filledcurves fc rgb "#17becf" fs transparent solid 0.2 noborder notitle, \
     "" index 7 using 1:4 with lines lw 2 lc rgb "#17becf" dt 1 title "mot group_size=16 n_experts=8 (2 seeds)", \
     "" index 8 using 1:6:7 with filledcurves fc rgb "#7f7f7f" fs transparent solid 0.2 noborder notitle, \
     "" index 8 using 1:4 with lines lw 2 lc rgb "#7f7f7f" dt 1 title "mot group_size=16 n_experts=32 (2 seeds)", \
     "" index 9 using 1:6:7 with filledcurves fc rgb "#bcbd22" fs transparent solid 0.2 noborder notitle, \
     "" index 9 using 1:4 with lines lw 2 lc rgb "#bcbd22" dt 1 title "mot group_size=16 n_experts=128 (2 seeds)", \
     "" index 10 using 1:6:7 with filledcurves fc rgb "#000000" fs transparent solid 0.2 noborder notitle, \
     "" index 10 using 1:4 with lines lw 2 lc rgb "#000000" dt 1 title "mot group_size=32 n_experts=8 (2 seeds)", \
     "" index 11 using 1:6:7 with filledcurves fc rgb "#393b79" fs transparent solid 0.2 noborder notitle, \
     "" index 11 using 1:4 with lines lw 2 lc rgb "#393b79" dt 1 title "mot group_size=32 n_experts=32 (2 seeds)", \
     "" index 12 using 1:6:7 with filledcurves fc rgb "#637939" fs transparent solid 0.2 noborder notitle, \
     "" index 12 using 1:4 with lines lw 2 lc rgb "#637939" dt 1 title "mot group_size=32 n_experts=128 (2 seeds)"
