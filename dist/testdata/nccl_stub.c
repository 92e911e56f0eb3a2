/* A stand-in for libnccl.so.2 that checks shoggo's purego bindings without a
 * GPU: same symbols and signatures as NCCL 2.x, host memory instead of
 * device memory, and one process playing a rank of nranks identical ranks
 * (every rank is assumed to hold the same data). ncclCommInitRank verifies
 * the 128-byte id it receives BY VALUE against the pattern ncclGetUniqueId
 * wrote, which checks the by-value ABI of the binding. Built by the tests
 * with gcc -shared -fPIC. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char internal[128]; } ncclUniqueId;
typedef struct { int nranks, rank; ncclUniqueId id; } stubComm;
typedef stubComm *ncclComm_t;
typedef void *cudaStream_t;
enum { ncclSuccess = 0, ncclInvalidArgument = 4, ncclInvalidUsage = 5 };
enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 };
enum { ncclFloat32 = 7 };

static char last[256];
static void *lastStream;

void *stubLastStream(void) { return lastStream; }

int ncclGetVersion(int *v) { *v = 22105; return ncclSuccess; }

const char *ncclGetErrorString(int r) {
  switch (r) {
  case ncclSuccess: return "no error";
  case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
  case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
  }
  return "unknown result code";
}

const char *ncclGetLastError(ncclComm_t comm) { (void)comm; return last; }

int ncclGetUniqueId(ncclUniqueId *id) {
  for (int i = 0; i < 128; i++) id->internal[i] = (char)((i * 13 + 5) & 0xff);
  return ncclSuccess;
}

int ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
  for (int i = 0; i < 128; i++) {
    if ((unsigned char)id.internal[i] != ((i * 13 + 5) & 0xff)) {
      snprintf(last, sizeof last, "id mismatch at byte %d", i);
      return ncclInvalidArgument;
    }
  }
  if (nranks < 1 || rank < 0 || rank >= nranks) {
    snprintf(last, sizeof last, "rank %d of %d", rank, nranks);
    return ncclInvalidArgument;
  }
  stubComm *c = malloc(sizeof *c);
  c->nranks = nranks; c->rank = rank; c->id = id;
  *comm = c;
  last[0] = 0;
  return ncclSuccess;
}

int ncclCommDestroy(ncclComm_t comm) { free(comm); return ncclSuccess; }
int ncclCommAbort(ncclComm_t comm) { free(comm); return ncclSuccess; }
int ncclGroupStart(void) { return ncclSuccess; }
int ncclGroupEnd(void) { return ncclSuccess; }

static int check(int dt, cudaStream_t s) {
  lastStream = s;
  if (dt != ncclFloat32) {
    snprintf(last, sizeof last, "stub supports ncclFloat32 only, got %d", dt);
    return ncclInvalidArgument;
  }
  return ncclSuccess;
}

/* n identical ranks: the reduction of n copies of x. */
static float red(float x, int op, int n) {
  switch (op) {
  case ncclSum: return x * (float)n;
  case ncclAvg: return x;
  case ncclMax: case ncclMin: return x;
  }
  float p = 1; for (int i = 0; i < n; i++) p *= x; return p;
}

int ncclAllReduce(const void *send, void *recv, size_t count, int dt, int op, ncclComm_t comm, cudaStream_t s) {
  int r = check(dt, s); if (r) return r;
  const float *a = send; float *b = recv;
  for (size_t i = 0; i < count; i++) b[i] = red(a[i], op, comm->nranks);
  return ncclSuccess;
}

int ncclBroadcast(const void *send, void *recv, size_t count, int dt, int root, ncclComm_t comm, cudaStream_t s) {
  int r = check(dt, s); if (r) return r;
  if (root < 0 || root >= comm->nranks) { snprintf(last, sizeof last, "root %d", root); return ncclInvalidArgument; }
  memmove(recv, send, count * sizeof(float));
  return ncclSuccess;
}

int ncclAllGather(const void *send, void *recv, size_t count, int dt, ncclComm_t comm, cudaStream_t s) {
  int r = check(dt, s); if (r) return r;
  for (int q = 0; q < comm->nranks; q++) memcpy((float *)recv + q * count, send, count * sizeof(float));
  return ncclSuccess;
}

int ncclReduceScatter(const void *send, void *recv, size_t count, int dt, int op, ncclComm_t comm, cudaStream_t s) {
  int r = check(dt, s); if (r) return r;
  const float *a = (const float *)send + comm->rank * count; float *b = recv;
  for (size_t i = 0; i < count; i++) b[i] = red(a[i], op, comm->nranks);
  return ncclSuccess;
}
