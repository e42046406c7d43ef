# sweep plot dense_vs_mot --metric layer*/entropy --x step --band minmax: redraw with  gnuplot layer_entropy.gp
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
  set terminal pngcairo size 1280,420 noenhanced font "sans,10"
} else {
  set terminal png size 1280,420 noenhanced
}
set output "layer_entropy.png"
set grid
set key top right opaque box
set xlabel "training step"
set multiplot layout 1,2 title "dense_vs_mot: layer*/entropy (band: min to max over seeds)"
set ylabel "layer0/entropy (normalised, 0 to 1)"
set title "layer0/entropy"
plot "layer_entropy.dat" index 0 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 0 using 1:4 with lines lw 2 lc rgb "#d62728" title "mot (3 seeds)"
set ylabel "layer1/entropy (normalised, 0 to 1)"
set title "layer1/entropy"
plot "layer_entropy.dat" index 1 using 1:6:7 with filledcurves fc rgb "#d62728" fs transparent solid 0.2 noborder notitle, \
     "" index 1 using 1:4 with lines lw 2 lc rgb "#d62728" title "mot (3 seeds)"
unset multiplot
