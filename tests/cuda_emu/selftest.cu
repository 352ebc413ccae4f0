/* Checks of the emulation layer itself (emu.h), compiled like generated
 * code (-include emu.h) and run first by the cuda_emu suite: when these
 * pass, a graph that differs from the interpreter points at the printer
 * (codegen/cuda.c), not at the emulator. Hand-written CUDA C. */

/* Warp sums by shuffles (lane 0 holds its warp's sum), then the block's
 * sum through shared memory, several rounds (barriers are reused), for
 * every type smelt shuffles. Per block and round: the six sums. */
extern "C" __global__ void __launch_bounds__(256) st_reduce(long long *out, int rounds) {
  __shared__ long long part[6][32];
  for (int r = 0; r < rounds; r++) {
    const unsigned t = threadIdx.x;
    int vi = (int)t - 100 + r;
    unsigned vu = t * 3u;
    long long vl = (long long)t * 4000000007LL + blockIdx.x;
    unsigned long long vul = 0xfff0000000000000ull + t;
    float vf = (float)t * 0.25f;
    double vd = (double)t * 0.5 + r;
    for (int off = 16; off > 0; off >>= 1) {
      vi += __shfl_down_sync(0xffffffffu, vi, off);
      vu += __shfl_down_sync(0xffffffffu, vu, off);
      vl += __shfl_down_sync(0xffffffffu, vl, off);
      vul += __shfl_down_sync(0xffffffffu, vul, off);
      vf += __shfl_down_sync(0xffffffffu, vf, off);
      vd += __shfl_down_sync(0xffffffffu, vd, off);
    }
    if ((t & 31) == 0) {
      part[0][t >> 5] = vi, part[1][t >> 5] = vu, part[2][t >> 5] = vl;
      part[3][t >> 5] = (long long)vul, part[4][t >> 5] = (long long)vf;
      part[5][t >> 5] = (long long)vd;
    }
    __syncthreads();
    if (t < 6) {
      long long s = 0;
      for (unsigned w = 0; w < blockDim.x / 32; w++) s += part[t][w];
      out[((long long)blockIdx.x * rounds + r) * 6 + t] = s;
    }
    __syncthreads();
  }
}

/* A shuffle past the warp's end returns the caller's own value. */
extern "C" __global__ void __launch_bounds__(64) st_shfl_edge(int *out) {
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, (int)threadIdx.x, 5);
}

/* Every atomic smelt uses, from every thread of every block. */
extern "C" __global__ void __launch_bounds__(256) st_atomics(float *f, double *d, int *i,
                                                             unsigned *u,
                                                             unsigned long long *ul,
                                                             int *flag, int *winners,
                                                             unsigned *bits) {
  atomicAdd(f, 1.0f);
  atomicAdd(d, 0.5);
  atomicAdd(i, -1);
  atomicAdd(u, 2u);
  atomicAdd(ul, 0x100000000ull);
  if (atomicCAS(flag, 0, (int)threadIdx.x + 1) == 0) atomicAdd(winners, 1);
  atomicOr(&bits[blockIdx.x], 1u << (threadIdx.x & 31));
  __threadfence();
}

/* Every block of a 3-D grid runs once; half the threads exit before the
 * others reach their barriers, which must not wait for them. */
extern "C" __global__ void __launch_bounds__(128) st_grid(int *count, unsigned *dims) {
  if (threadIdx.x >= 64) return;
  __shared__ int seen;
  for (int r = 0; r < 3; r++) {
    if (threadIdx.x == 0) seen = r;
    __syncthreads();
    if (seen != r) atomicAdd(count, 1000000); /* a barrier did not hold */
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    atomicAdd(&count[1 + (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x], 1);
    dims[0] = gridDim.x, dims[1] = gridDim.y, dims[2] = gridDim.z, dims[3] = blockDim.x;
  }
}

#define CHECK(cond, ...)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      snprintf(msg, cap, __VA_ARGS__);                                                    \
      return 1;                                                                           \
    }                                                                                     \
  } while (0)

extern "C" int emu_selftest(char *msg, size_t cap) {
  /* intrinsics */
  const float big = 3e9f, nanf_ = __int_as_float(0x7fc00000);
  const double nand = __longlong_as_double(0x7ff8000000000000LL);
  CHECK(__float2int_rz(nanf_) == 0 && __float2int_rz(big) == INT_MAX &&
            __float2int_rz(-big) == INT_MIN && __float2int_rz(-2.9f) == -2 &&
            __float2int_rz(2147483520.0f) == 2147483520 &&
            __float2int_rz(-2147483648.0f) == INT_MIN,
        "__float2int_rz");
  CHECK(__double2int_rz(nand) == 0 && __double2int_rz(2147483647.9) == INT_MAX &&
            __double2int_rz(-2147483648.9) == INT_MIN && __double2int_rz(1e300) == INT_MAX &&
            __double2int_rz(-0.5) == 0,
        "__double2int_rz");
  CHECK(__float2ll_rz(nanf_) == 0 && __float2ll_rz(1e19f) == LLONG_MAX &&
            __float2ll_rz(-1e19f) == LLONG_MIN && __float2ll_rz(-3e9f) == -3000000000LL &&
            __float2ll_rz(__int_as_float(0x7f800000)) == LLONG_MAX,
        "__float2ll_rz");
  CHECK(__double2ll_rz(nand) == 0 && __double2ll_rz(9.3e18) == LLONG_MAX &&
            __double2ll_rz(-9.3e18) == LLONG_MIN &&
            __double2ll_rz(-1e15 - 0.5) == -1000000000000000LL,
        "__double2ll_rz");
  CHECK(__umulhi(0xffffffffu, 0xffffffffu) == 0xfffffffeu && __umulhi(0x10000u, 0x10000u) == 1u,
        "__umulhi");
  CHECK(__int_as_float(0x3f800000) == 1.0f && __longlong_as_double(0x4000000000000000LL) == 2.0,
        "bit casts");
  CHECK(min(3, -4) == -4 && max(3u, 4u) == 4u && min(2LL, 5LL) == 2 && max(1.5f, -1.0f) == 1.5f &&
            min(0.25, 0.5) == 0.25,
        "min/max");

  /* shuffles and barriers: 5 blocks of 256 threads, 20 rounds */
  {
    const int blocks = 5, rounds = 20;
    static long long out[5 * 20 * 6];
    const long long grid[3] = {blocks, 1, 1};
    CHECK(!emu_launch("st_reduce", grid, 256, [&] { st_reduce(out, rounds); }), "launch");
    for (int b = 0; b < blocks; b++)
      for (int r = 0; r < rounds; r++) {
        long long want[6] = {0, 0, 0, 0, 0, 0};
        for (int w = 0; w < 8; w++) { /* per warp, as the kernel truncates each warp's sum */
          int vi = 0;
          unsigned vu = 0;
          long long vl = 0;
          unsigned long long vul = 0;
          float vf = 0;
          double vd = 0;
          for (int l = 0; l < 32; l++) {
            unsigned t = (unsigned)(32 * w + l);
            vi += (int)t - 100 + r, vu += t * 3u, vl += (long long)t * 4000000007LL + b;
            vul += 0xfff0000000000000ull + t, vf += (float)t * 0.25f, vd += (double)t * 0.5 + r;
          }
          want[0] += vi, want[1] += vu, want[2] += vl, want[3] += (long long)vul;
          want[4] += (long long)vf, want[5] += (long long)vd;
        }
        for (int k = 0; k < 6; k++)
          CHECK(out[(b * rounds + r) * 6 + k] == want[k],
                "shuffle sums: block %d round %d type %d: got %lld, want %lld", b, r, k,
                out[(b * rounds + r) * 6 + k], want[k]);
      }
  }
  {
    static int out[64];
    const long long grid[3] = {1, 1, 1};
    CHECK(!emu_launch("st_shfl_edge", grid, 64, [&] { st_shfl_edge(out); }), "launch");
    for (int t = 0; t < 64; t++)
      CHECK(out[t] == ((t & 31) + 5 < 32 ? t + 5 : t),
            "shuffle at the warp's edge: lane %d gave %d", t, out[t]);
  }
  /* atomics: 6 blocks of 256 threads */
  {
    static float f;
    static double d;
    static int i, flag, winners;
    static unsigned u, bits[6];
    static unsigned long long ul;
    const long long grid[3] = {6, 1, 1};
    CHECK(!emu_launch("st_atomics", grid, 256,
                      [&] { st_atomics(&f, &d, &i, &u, &ul, &flag, &winners, bits); }),
          "launch");
    CHECK(f == 1536.0f && d == 768.0 && i == -1536 && u == 3072u && ul == 1536ull << 32,
          "atomicAdd: %g %g %d %u %llu", f, d, i, u, ul);
    CHECK(winners == 1 && flag >= 1 && flag <= 256, "atomicCAS: %d winners", winners);
    for (int b = 0; b < 6; b++) CHECK(bits[b] == 0xffffffffu, "atomicOr: %08x", bits[b]);
  }
  /* a 3-D grid, exited threads */
  {
    static int count[1 + 3 * 2 * 4];
    static unsigned dims[4];
    const long long grid[3] = {3, 2, 4};
    CHECK(!emu_launch("st_grid", grid, 128, [&] { st_grid(count, dims); }), "launch");
    CHECK(count[0] == 0, "__syncthreads did not hold the block's threads");
    for (int k = 1; k < 1 + 24; k++) CHECK(count[k] == 1, "block %d ran %d times", k - 1, count[k]);
    CHECK(dims[0] == 3 && dims[1] == 2 && dims[2] == 4 && dims[3] == 128, "gridDim/blockDim");
  }
  return 0;
}
