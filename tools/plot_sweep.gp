# Plots one trace's sweep results (written by `moestream sweep --plot DIR`).
# Variables: n (number of policy blocks), datafile (rows: policy capacity_pct hit_rate min_hit_rate stall_ms,
# one block per policy separated by two blank lines), title, out_hit, out_stall.
#   gnuplot -e "n=2; datafile='x.dat'; title='qwen3'; out_hit='h.png'; out_stall='s.png'" plot_sweep.gp
set terminal png size 900,600 noenhanced
set key outside right
set grid
set xlabel "capacity (% of a layer's experts)"

set output out_hit
set ylabel "demand hit rate"
set title title." - hit rate vs capacity (MIN = ceiling)"
plot for [i=0:n-1] datafile index i using 2:3 with linespoints title columnhead(1), \
     datafile index 0 using 2:4 with lines lw 3 dt 2 lc rgb "black" title "MIN"

set output out_stall
set ylabel "modelled stall (ms)"
set title title." - stall vs capacity"
plot for [i=0:n-1] datafile index i using 2:5 with linespoints title columnhead(1)
