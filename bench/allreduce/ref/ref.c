/* The C reference for bench/allreduce: Open MPI's own all-reduce loop, the
 * same way bench/allreduce/main.go times shoggo's binding (in place, float,
 * MPI_SUM, osu_allreduce-style: warm-up, barrier, timed iterations, the
 * slowest rank's average). Build: mpicc -O2 -o allreduce-ref ref.c (in a directory of its own: a Go
 * package directory may not hold C files without cgo) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  int provided, rank, size;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long maxBytes = argc > 1 ? atol(argv[1]) : 64L << 20;
  float *buf = malloc(maxBytes);
  for (long i = 0; i < maxBytes / 4; i++) buf[i] = 0;
  for (long bytes = 1024; bytes <= maxBytes; bytes *= 4) {
    int count = (int)(bytes / 4);
    int iters = bytes <= (1 << 16) ? 1000 : bytes <= (1 << 22) ? 100 : 20;
    for (int i = 0; i < iters / 10 + 1; i++)
      MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++)
      MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double t = (MPI_Wtime() - t0) / iters, tmax;
    MPI_Reduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
      double algbw = bytes / tmax / 1e9;
      printf("RESULT impl=c-mpi op=allreduce ranks=%d bytes=%ld us=%.2f algbw_GBps=%.3f busbw_GBps=%.3f\n",
             size, bytes, tmax * 1e6, algbw, algbw * 2 * (size - 1) / size);
      fflush(stdout);
    }
  }
  free(buf);
  MPI_Finalize();
  return 0;
}
