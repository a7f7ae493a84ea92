// A Marlin-class 4-bit GEMM for batches of 2 to 64 tokens: 4-bit weights repacked at load so
// that each lane's 16-byte load holds exactly its tensor-core fragments, dequantized to f16 in
// registers (two f16x2 instructions per pair of weights) and multiplied on the tensor cores
// (mma.sync m16n8k16, f32 accumulation) against f16 activations staged in shared memory.
//
// Repacked layout (q4_0, q4_1, q4_K; every 4-bit weight is w = s·q + m with q in 0 ... 15 and
// one (s, m) per row and 32 columns; s and m rounded to f16):
//   Q: per 16-row tile, per 64 columns, per lane: 16 bytes = four u32, one per 16-column step j.
//      Lane l = 4g + t holds the A fragment of mma.m16n8k16: rows g and g + 8, columns 2t, 2t+1,
//      2t+8, 2t+9 of the step; register i (0: row g, cols 2t..; 1: row g+8, cols 2t..; 2: row g,
//      cols 2t+8..; 3: row g+8, cols 2t+8..) has its two nibbles at bits 4i and 16 + 4i, so
//      that (u >> 4i) & 0x000F000F | 0x64006400 is the f16x2 (1024 + q0, 1024 + q1).
//   S: per 16-row tile, per 64 columns, per g: 16 bytes = f16x2 (s, m) of (row g, group 0),
//      (row g + 8, group 0), (row g, group 1), (row g + 8, group 1).
// Needs rows % 16 == 0 and cols % 64 == 0, and compute capability 8.0 or newer.
extension KernelSource {
    static let marlin = #"""
// ---------------------------------------------------------------------------------------------
// Marlin-class 4-bit GEMM (sm_80 and newer: cp.async, mma.m16n8k16; absent from older builds).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800

// Nibble q of element i of a row, and its group's s, m (w = s·q + m).
template <int T> DEV void q4_parts(const u8* row, int i, int& q, float& s, float& m) {
    if constexpr (T == Q4_0 || T == Q4_1) {
        int b = i / 32, j = i % 32;
        const u8* k = row + b * (T == Q4_0 ? 18 : 20);
        u8 x = k[(T == Q4_0 ? 2 : 4) + (j & 15)];
        q = j < 16 ? (x & 15) : (x >> 4);
        float d = h2f(ld16(k));
        s = d; m = T == Q4_0 ? -8.0f * d : h2f(ld16(k + 2));
    } else {
        int sb = i / 256, e = i % 256, c = e / 32, l = e % 32;
        const u8* k = row + sb * 144;
        int sc, mn; scale_min_k4(c, k + 4, sc, mn);
        u8 x = k[16 + 32 * (c / 2) + l];
        q = (c & 1) ? (x >> 4) : (x & 15);
        s = h2f(ld16(k)) * (float)sc; m = -(h2f(ld16(k + 2)) * (float)mn);
    }
}

// One thread per (16-row tile, 64-column step, lane): its 16 bytes of Q; lanes 0 ... 7 also
// write the 16 bytes of S for g = lane. grid (tiles · steps · 32 / 256), block 256.
template <int T> DEV void marlin_repack_impl(const u8* W, u64 rowBytes, int rows, int cols, uint4* Q, uint4* S) {
    const int steps = cols / 64;
    const u64 id = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (u64)(rows / 16) * steps * 32) return;
    const int lane = id & 31, g = lane >> 2, t = lane & 3;
    const u64 ts = id >> 5;
    const int step = ts % steps, tile = ts / steps;
    u32 out[4];
    for (int j = 0; j < 4; j++) {
        u32 u = 0;
        for (int i = 0; i < 4; i++) {
            int row = tile * 16 + g + (i & 1) * 8, col = step * 64 + j * 16 + 2 * t + (i >> 1) * 8;
            int q0, q1; float s, m;
            q4_parts<T>(W + (u64)row * rowBytes, col, q0, s, m);
            q4_parts<T>(W + (u64)row * rowBytes, col + 1, q1, s, m);
            u |= ((u32)q0 << (4 * i)) | ((u32)q1 << (16 + 4 * i));
        }
        out[j] = u;
    }
    Q[id] = make_uint4(out[0], out[1], out[2], out[3]);
    if (lane < 8) {
        u32 sm[4];
        for (int e = 0; e < 4; e++) {
            int row = tile * 16 + lane + (e & 1) * 8, col = step * 64 + (e >> 1) * 32;
            int q; float s, m;
            q4_parts<T>(W + (u64)row * rowBytes, col, q, s, m);
            sm[e] = (u32)f2h(s) | ((u32)f2h(m) << 16);
        }
        S[ts * 8 + lane] = make_uint4(sm[0], sm[1], sm[2], sm[3]);
    }
}
#define MREPACK(T, name) extern "C" __global__ void __launch_bounds__(256) name(const u8* W, u64 rowBytes, int rows, int cols, uint4* Q, uint4* S) { PDL_ENTRY(); marlin_repack_impl<T>(W, rowBytes, rows, cols, Q, S); }
MREPACK(Q4_0, marlin_repack_q4_0) MREPACK(Q4_1, marlin_repack_q4_1) MREPACK(Q4_K, marlin_repack_q4_K)

DEV u32 hsub2(u32 a, u32 b) { u32 d; asm("sub.f16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b)); return d; }
DEV u32 hfma2(u32 a, u32 b, u32 c) { u32 d; asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c)); return d; }
DEV u32 smem_addr(const void* p) { return (u32)__cvta_generic_to_shared(p); }
DEV void cp_async16(void* dst, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(smem_addr(dst)), "l"(src));
}
DEV void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> DEV void cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N)); }
DEV uint4 ldg_stream(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}
DEV void ldmatrix_x4(u32* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
DEV void mma_16816(float* c, const u32* a, u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#define MQ_KC 128              // columns of activations per shared-memory chunk
#define MQ_PITCH (MQ_KC + 8)   // halves per staged row (conflict-free ldmatrix)
#define MQ_WARPS 8             // 16-row tiles per block

// y (or the split's partial) [tokens, rows] = X [tokens, cols] (f16) · Wᵀ for NT tiles of 8
// tokens. grid (row blocks of 128, splits), block 256. Split s covers columns
// [s · kPerSplit, ...) (kPerSplit a multiple of MQ_KC) and writes out + s · tokens · rows.
template <int NT> DEV void marlin_impl(const uint4* __restrict__ Q, const uint4* __restrict__ S, const u16* __restrict__ X,
                                       int rows, int cols, int tokens, int kPerSplit, float* __restrict__ out) {
    __shared__ __align__(16) u16 xs[2][NT * 8][MQ_PITCH];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int tile = blockIdx.x * MQ_WARPS + warp, steps = cols / 64;
    const int kBegin = blockIdx.y * kPerSplit, kEnd = min(cols, kBegin + kPerSplit);
    const bool active = tile * 16 < rows;
    float acc[NT][4];
    #pragma unroll
    for (int n = 0; n < NT; n++) { acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f; }

    auto stage = [&](int buf, int k0) {
        for (int i = threadIdx.x; i < NT * 8 * (MQ_KC / 8); i += blockDim.x) {
            int r = i / (MQ_KC / 8), c = (i % (MQ_KC / 8)) * 8;
            u16* dst = &xs[buf][r][c];
            if (r < tokens && k0 + c < kEnd) cp_async16(dst, X + (u64)r * cols + k0 + c);
            else *(uint4*)dst = make_uint4(0, 0, 0, 0);
        }
        cp_async_commit();
    };

    const uint4* Qt = Q + (u64)tile * steps * 32 + lane;
    const uint4* St = S + (u64)tile * steps * 8 + g;
    int step = kBegin / 64;
    const int lastStep = (kEnd - 1) / 64;
    // The next step's weights are in flight while this one computes.
    uint4 qn = make_uint4(0, 0, 0, 0), sn = qn;
    if (active) { qn = ldg_stream(Qt + (u64)step * 32); sn = St[(u64)step * 8]; }

    const int chunks = (kEnd - kBegin + MQ_KC - 1) / MQ_KC;
    stage(0, kBegin);
    for (int c = 0; c < chunks; c++) {
        if (c + 1 < chunks) { stage((c + 1) & 1, kBegin + (c + 1) * MQ_KC); cp_async_wait<1>(); } else cp_async_wait<0>();
        __syncthreads();
        const u16 (*xb)[MQ_PITCH] = xs[c & 1];
        #pragma unroll
        for (int half = 0; half < MQ_KC / 64; half++) {
            if (active && step <= lastStep && kBegin + c * MQ_KC + half * 64 < kEnd) {
                const uint4 q = qn, sc = sn;
                if (step + 1 <= lastStep) { qn = ldg_stream(Qt + (u64)(step + 1) * 32); sn = St[(u64)(step + 1) * 8]; }
                const u32 qw[4] = {q.x, q.y, q.z, q.w};
                #pragma unroll
                for (int j = 0; j < 4; j++) {
                    const u32 s0 = j < 2 ? sc.x : sc.z, s1 = j < 2 ? sc.y : sc.w;
                    // (s, s) and (m, m) of rows g and g + 8.
                    const u32 sg = __byte_perm(s0, 0, 0x1010), mg = __byte_perm(s0, 0, 0x3232);
                    const u32 sh = __byte_perm(s1, 0, 0x1010), mh = __byte_perm(s1, 0, 0x3232);
                    u32 a[4];
                    #pragma unroll
                    for (int i = 0; i < 4; i++) {
                        u32 h = ((qw[j] >> (4 * i)) & 0x000F000Fu) | 0x64006400u;
                        a[i] = hfma2(hsub2(h, 0x64006400u), (i & 1) ? sh : sg, (i & 1) ? mh : mg);
                    }
                    const int kk = half * 64 + j * 16;
                    #pragma unroll
                    for (int p = 0; p < (NT + 1) / 2; p++) {
                        u32 b[4];
                        const int tok = 16 * p + ((lane >> 4) << 3) + (lane & 7), col = kk + ((lane >> 3) & 1) * 8;
                        ldmatrix_x4(b, &xb[tok < NT * 8 ? tok : 0][col]);
                        mma_16816(acc[2 * p], a, b[0], b[1]);
                        if (2 * p + 1 < NT) mma_16816(acc[2 * p + 1], a, b[2], b[3]);
                    }
                }
                step++;
            }
        }
        __syncthreads();
    }
    if (!active) return;
    float* o = out + (u64)blockIdx.y * tokens * rows;
    const int r0 = tile * 16 + g;
    #pragma unroll
    for (int n = 0; n < NT; n++) {
        const int tk = n * 8 + 2 * t;
        if (tk < tokens) { o[(u64)tk * rows + r0] = acc[n][0]; o[(u64)tk * rows + r0 + 8] = acc[n][2]; }
        if (tk + 1 < tokens) { o[(u64)(tk + 1) * rows + r0] = acc[n][1]; o[(u64)(tk + 1) * rows + r0 + 8] = acc[n][3]; }
    }
}
#define MARLIN(NT) extern "C" __global__ void __launch_bounds__(256) marlin_q4_##NT(const uint4* Q, const uint4* S, const u16* X, int rows, int cols, int tokens, int kPerSplit, float* out) { PDL_ENTRY(); marlin_impl<NT>(Q, S, X, rows, cols, tokens, kPerSplit, out); }
MARLIN(1) MARLIN(2) MARLIN(3) MARLIN(4) MARLIN(5) MARLIN(6) MARLIN(7) MARLIN(8)

// y = Σ over splits of part[s] (count floats each), in split order.
extern "C" __global__ void marlin_reduce(const float* part, int splits, u64 count, float* y) { PDL_ENTRY();
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x) {
        float v = part[i];
        for (int s = 1; s < splits; s++) v += part[(u64)s * count + i];
        y[i] = v;
    }
}
#endif
"""#
}
