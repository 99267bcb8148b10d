# throughput.gp - throughput against requests in flight, one panel per
# transport; run.sh passes the data files (columns: in flight, echo, get,
# update, update-hot, lock-cycle, mixed; ops/s) and the output:
#   gnuplot -e "ipc='a.tsv'; tcp='b.tsv'; out='x.png'" throughput.gp
set terminal pngcairo size 1200,520 font "sans,10" noenhanced
set output out
set multiplot layout 1,2 \
    title "datasync: throughput against requests in flight " . \
    "(same-run raw nng echo for reference)"
set logscale x 2
set logscale y 10
set xrange [0.8:320]
set xtics (1, 8, 64, 256)
set xlabel "requests in flight"
set ylabel "ops/s"
set grid
set key top left horizontal maxrows 2
set yrange [10:1000000]
set style data linespoints
do for [f in "ipc tcp"] {
  file = (f eq "ipc") ? ipc : tcp
  set title f . "://"
  plot file using 1:2 title "raw echo" lw 2 dt 2 lc rgb "#555555", \
       file using 1:3 title "get" lw 2, \
       file using 1:4 title "update (CAS)" lw 2, \
       file using 1:5 title "update-hot (1 key)" lw 2, \
       file using 1:6 title "lock-cycle" lw 2, \
       file using 1:7 title "mixed 90/10" lw 2
}
unset multiplot
