# sweep plot moe_comparison --metric layer*/dropped_frac --x step --band minmax: redraw with  gnuplot layer_dropped_frac.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1280,420 noenhanced font "sans,10"
} else {
  set terminal png size 1280,420 noenhanced
}
set output "layer_dropped_frac.png"
set grid
set key top right opaque box
set xlabel "training step"
set multiplot layout 1,2 title "moe_comparison: layer*/dropped_frac (band: min to max over seeds)"
set ylabel "layer0/dropped_frac (fraction of tokens)"
set title "layer0/dropped_frac"
plot "layer_dropped_frac.dat" index 0 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 0 using 1:4 with lines lw 2 lc rgb "#d62728" dt 1 title "switch (3 seeds)", \
     "" index 1 using 1:6:7 with filledcurves fc rgb "#2ca02c" fs transparent solid 0.2 noborder notitle, \
     "" index 1 using 1:4 with lines lw 2 lc rgb "#2ca02c" dt 1 title "top_2 (3 seeds)", \
     "" index 2 using 1:6:7 with filledcurves fc rgb "#ff7f0e" fs transparent solid 0.2 noborder notitle, \
     "" index 2 using 1:4 with lines lw 2 lc rgb "#ff7f0e" dt 1 title "expert_choice (3 seeds)", \
     "" index 3 using 1:6:7 with filledcurves fc rgb "#9467bd" fs transparent solid 0.2 noborder notitle, \
     "" index 3 using 1:4 with lines lw 2 lc rgb "#9467bd" dt 1 title "mot (3 seeds)"
set ylabel "layer1/dropped_frac (fraction of tokens)"
set title "layer1/dropped_frac"
plot "layer_dropped_frac.dat" index 4 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 4 using 1:4 with lines lw 2 lc rgb "#d62728" dt 1 title "switch (3 seeds)", \
     "" index 5 using 1:6:7 with filledcurves fc rgb "#2ca02c" fs transparent solid 0.2 noborder notitle, \
     "" index 5 using 1:4 with lines lw 2 lc rgb "#2ca02c" dt 1 title "top_2 (3 seeds)", \
     "" index 6 using 1:6:7 with filledcurves fc rgb "#ff7f0e" fs transparent solid 0.2 noborder notitle, \
     "" index 6 using 1:4 with lines lw 2 lc rgb "#ff7f0e" dt 1 title "expert_choice (3 seeds)", \
     "" index 7 using 1:6:7 with filledcurves fc rgb "#9467bd" fs transparent solid 0.2 noborder notitle, \
     "" index 7 using 1:4 with lines lw 2 lc rgb "#9467bd" dt 1 title "mot (3 seeds)"
unset multiplot
