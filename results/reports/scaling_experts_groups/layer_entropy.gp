# sweep plot scaling_experts_groups --metric layer*/entropy --x step --band minmax: redraw with  gnuplot layer_entropy.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1280,420 noenhanced font "sans,10"
} else {
  set terminal png size 1280,420 noenhanced
}
set output "layer_entropy.png"
set grid
set key top right opaque box
set xlabel "training step"
set multiplot layout 1,2 title "scaling_experts_groups: layer*/entropy (band: min to max over seeds)"
set ylabel "layer0/entropy (normalised, 0 to 1)"
set title "layer0/entropy"
plot "layer_entropy.dat" index 0 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 0 using 1:4 with lines lw 2 lc rgb "#d62728" dt 1 title "mot group_size=1 n_experts=8 (2 seeds)", \
     "" index 1 using 1:6:7 with filledcurves fc rgb "#2ca02c" fs transparent solid 0.2 noborder notitle, \
     "" index 1 using 1:4 with lines lw 2 lc rgb "#2ca02c" dt 1 title "mot group_size=1 n_experts=32 (2 seeds)", \
     "" index 2 using 1:6:7 with filledcurves fc rgb "#ff7f0e" fs transparent solid 0.2 noborder notitle, \
     "" index 2 using 1:4 with lines lw 2 lc rgb "#ff7f0e" dt 1 title "mot group_size=1 n_experts=128 (2 seeds)", \
     "" index 3 using 1:6:7 with filledcurves fc rgb "#9467bd" fs transparent solid 0.2 noborder notitle, \
     "" index 3 using 1:4 with lines lw 2 lc rgb "#9467bd" dt 1 title "mot group_size=8 n_experts=8 (2 seeds)", \
     "" index 4 using 1:6:7 with filledcurves fc rgb "#8c564b" fs transparent solid 0.2 noborder notitle, \
     "" index 4 using 1:4 with lines lw 2 lc rgb "#8c564b" dt 1 title "mot group_size=8 n_experts=32 (2 seeds)", \
     "" index 5 using 1:6:7 with filledcurves fc rgb "#e377c2" fs transparent solid 0.2 noborder notitle, \
     "" index 5 using 1:4 with lines lw 2 lc rgb "#e377c2" dt 1 title "mot group_size=8 n_experts=128 (2 seeds)", \
     "" index 6 using 1:6:7 with filledcurves fc rgb "#17becf" fs transparent solid 0.2 noborder notitle, \
     "" index 6 using 1:4 with lines lw 2 lc rgb "#17becf" dt 1 title "mot group_size=16 n_experts=8 (2 seeds)", \
     "" index 7 using 1:6:7 with filledcurves fc rgb "#7f7f7f" fs transparent solid 0.2 noborder notitle, \
     "" index 7 using 1:4 with lines lw 2 lc rgb "#7f7f7f" dt 1 title "mot group_size=16 n_experts=32 (2 seeds)", \
     "" index 8 using 1:6:7 with filledcurves fc rgb "#bcbd22" fs transparent solid 0.2 noborder notitle, \
     "" index 8 using 1:4 with lines lw 2 lc rgb "#bcbd22" dt 1 title "mot group_size=16 n_experts=128 (2 seeds)", \
     "" index 9 using 1:6:7 with filledcurves fc rgb "#000000" fs transparent solid 0.2 noborder notitle, \
     "" index 9 using 1:4 with lines lw 2 lc rgb "#000000" dt 1 title "mot group_size=32 n_experts=8 (2 seeds)", \
     "" index 10 using 1:6:7 with filledcurves fc rgb "#393b79" fs transparent solid 0.2 noborder notitle, \
     "" index 10 using 1:4 with lines lw 2 lc rgb "#393b79" dt 1 title "mot group_size=32 n_experts=32 (2 seeds)", \
     "" index 11 using 1:6:7 with filledcurves fc rgb "#637939" fs transparent solid 0.2 noborder notitle, \
     "" index 11 using 1:4 with lines lw 2 lc rgb "#637939" dt 1 title "mot group_size=32 n_experts=128 (2 seeds)"
set ylabel "layer1/entropy (normalised, 0 to 1)"
set title "layer1/entropy"
plot "layer_entropy.dat" index 12 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 12 using 1:4 with lines lw 2 lc rgb "#d62728" dt 1 title "mot group_size=1 n_experts=8 (2 seeds)", \
     "" index 13 using 1:6:7 with filledcurves fc rgb "#2ca02c" fs transparent solid 0.2 noborder notitle, \
     "" index 13 using 1:4 with lines lw 2 lc rgb "#2ca02c" dt 1 title "mot group_size=1 n_experts=32 (2 seeds)", \
     "" index 14 using 1:6:7 with filledcurves fc rgb "#ff7f0e" fs transparent solid 0.2 noborder notitle, \
     "" index 14 using 1:4 with lines lw 2 lc rgb "#ff7f0e" dt 1 title "mot group_size=1 n_experts=128 (2 seeds)", \
     "" index 15 using 1:6:7 with filledcurves fc rgb "#9467bd" fs transparent solid 0.2 noborder notitle, \
     "" index 15 using 1:4 with lines lw 2 lc rgb "#9467bd" dt 1 title "mot group_size=8 n_experts=8 (2 seeds)", \
     "" index 16 using 1:6:7 with filledcurves fc rgb "#8c564b" fs transparent solid 0.2 noborder notitle, \
     "" index 16 using 1:4 with lines lw 2 lc rgb "#8c564b" dt 1 title "mot group_size=8 n_experts=32 (2 seeds)", \
     "" index 17 using 1:6:7 with filledcurves fc rgb "#e377c2" fs transparent solid 0.2 noborder notitle, \
     "" index 17 using 1:4 with lines lw 2 lc rgb "#e377c2" dt 1 title "mot group_size=8 n_experts=128 (2 seeds)", \
     "" index 18 using 1:6:7 with filledcurves fc rgb "#17becf" fs transparent solid 0.2 noborder notitle, \
     "" index 18 using 1:4 with lines lw 2 lc rgb "#17becf" dt 1 title "mot group_size=16 n_experts=8 (2 seeds)", \
     "" index 19 using 1:6:7 with filledcurves fc rgb "#7f7f7f" fs transparent solid 0.2 noborder notitle, \
     "" index 19 using 1:4 with lines lw 2 lc rgb "#7f7f7f" dt 1 title "mot group_size=16 n_experts=32 (2 seeds)", \
     "" index 20 using 1:6:7 with filledcurves fc rgb "#bcbd22" fs transparent solid 0.2 noborder notitle, \
     "" index 20 using 1:4 with lines lw 2 lc rgb "#bcbd22" dt 1 title "mot group_size=16 n_experts=128 (2 seeds)", \
     "" index 21 using 1:6:7 with filledcurves fc rgb "#000000" fs transparent solid 0.2 noborder notitle, \
     "" index 21 using 1:4 with lines lw 2 lc rgb "#000000" dt 1 title "mot group_size=32 n_experts=8 (2 seeds)", \
     "" index 22 using 1:6:7 with filledcurves fc rgb "#393b79" fs transparent solid 0.2 noborder notitle, \
     "" index 22 using 1:4 with lines lw 2 lc rgb "#393b79" dt 1 title "mot group_size=32 n_experts=32 (2 seeds)", \
     "" index 23 using 1:6:7 with filledcurves fc rgb "#637939" fs transparent solid 0.2 noborder notitle, \
     "" index 23 using 1:4 with lines lw 2 lc rgb "#637939" dt 1 title "mot group_size=32 n_experts=128 (2 seeds)"
unset multiplot
