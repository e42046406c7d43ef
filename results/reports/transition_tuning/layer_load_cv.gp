# sweep plot transition_tuning --metric layer*/load_cv --x step --band minmax: redraw with  gnuplot layer_load_cv.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1280,420 noenhanced font "sans,10"
} else {
  set terminal png size 1280,420 noenhanced
}
set output "layer_load_cv.png"
set grid
set key top right opaque box
set xlabel "training step"
set multiplot layout 1,2 title "transition_tuning: layer*/load_cv (band: min to max over seeds)"
set ylabel "layer0/load_cv (coefficient of variation)"
set title "layer0/load_cv"
plot "layer_load_cv.dat" index 0 using 1:6:7 with filledcurves fc rgb "#2ca02c" fs transparent solid 0.2 noborder notitle, \
     "" index 0 using 1:4 with lines lw 2 lc rgb "#2ca02c" title "switch (2 seeds)", \
     "" index 1 using 1:6:7 with filledcurves fc rgb "#ff7f0e" fs transparent solid 0.2 noborder notitle, \
     "" index 1 using 1:4 with lines lw 2 lc rgb "#ff7f0e" title "mot->switch @300 (2 seeds)"
set ylabel "layer1/load_cv (coefficient of variation)"
set title "layer1/load_cv"
plot "layer_load_cv.dat" index 2 using 1:6:7 with filledcurves fc rgb "#2ca02c" fs transparent solid 0.2 noborder notitle, \
     "" index 2 using 1:4 with lines lw 2 lc rgb "#2ca02c" title "switch (2 seeds)", \
     "" index 3 using 1:6:7 with filledcurves fc rgb "#ff7f0e" fs transparent solid 0.2 noborder notitle, \
     "" index 3 using 1:4 with lines lw 2 lc rgb "#ff7f0e" title "mot->switch @300 (2 seeds)"
unset multiplot
