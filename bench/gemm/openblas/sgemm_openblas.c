// sgemm_openblas: times OpenBLAS cblas_sgemm on the shapes in shapes.txt
// (read from stdin), in the same output format as the Go program
// (bench/gemm/main.go), so run.sh can put them side by side.
//
//   gcc -O2 -o sgemm_openblas sgemm_openblas.c -lopenblas
//   ./sgemm_openblas -threads 1 -mintime 0.5 < ../shapes.txt
//
// Output lines: "<name> <threads> <GFLOP/s>" where GFLOP/s is from the median
// of the timed calls. -clock thread times the calling thread's CPU time
// instead of wall time (single-threaded runs only): on a machine shared with
// other work it leaves out the time the thread was not running.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

static clockid_t clk = CLOCK_MONOTONIC;

static double now(void) {
	struct timespec ts;
	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmpd(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static float *randvec(size_t n, unsigned *seed) {
	float *v = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		*seed = *seed * 1664525u + 1013904223u;
		v[i] = ((*seed >> 8) / 16777216.0f) * 2.0f - 1.0f;
	}
	return v;
}

int main(int argc, char **argv) {
	int threads = 1;
	double mintime = 0.5;
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-threads") && i + 1 < argc) threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-mintime") && i + 1 < argc) mintime = atof(argv[++i]);
		else if (!strcmp(argv[i], "-only") && i + 1 < argc) only = argv[++i];
		else if (!strcmp(argv[i], "-clock") && i + 1 < argc) {
			i++;
			if (!strcmp(argv[i], "thread")) clk = CLOCK_THREAD_CPUTIME_ID;
			else if (strcmp(argv[i], "wall")) { fprintf(stderr, "-clock: wall or thread\n"); return 2; }
		}
		else { fprintf(stderr, "usage: %s [-threads N] [-mintime S] [-only NAME] [-clock wall|thread] < shapes.txt\n", argv[0]); return 2; }
	}
	openblas_set_num_threads(threads);
	fprintf(stderr, "openblas: core %s, config %s, threads %d\n", openblas_get_corename(), openblas_get_config(), threads);
	char line[512];
	unsigned seed = 1;
	while (fgets(line, sizeof line, stdin)) {
		char name[128], ta, tb;
		int m, n, k;
		float beta;
		if (line[0] == '#' || sscanf(line, "%127s %c %c %d %d %d %f", name, &ta, &tb, &m, &n, &k, &beta) != 7) continue;
		if (only && strcmp(only, name)) continue;
		int transA = ta == 'T', transB = tb == 'T';
		int lda = transA ? m : k, ldb = transB ? k : n, ldc = n;
		float *a = randvec((size_t)m * k, &seed), *b = randvec((size_t)k * n, &seed), *c = randvec((size_t)m * n, &seed);
		double flops = 2.0 * m * n * k;
		cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
			m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc); // warm up
		double times[10000];
		int reps = 0;
		double start = now();
		while (reps < 10000 && (reps < 3 || now() - start < mintime)) {
			double t0 = now();
			cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
				m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
			times[reps++] = now() - t0;
		}
		qsort(times, reps, sizeof(double), cmpd);
		printf("%s %d %.2f\n", name, threads, flops / times[reps / 2] / 1e9);
		fflush(stdout);
		free(a); free(b); free(c);
	}
	return 0;
}
