// Routed experts of a prompt-sized chunk on the GPU (the hybrid MoE set-up's prefill): the
// tokens routed to an expert are gathered into a dense block, run through the expert's matrices
// with the ordinary linear kernels, and each result row, times its routing weight, is written
// to its (slot, token) row; a last pass sums every token's slots in slot order, as the CPU's
// experts operator and ggml's graph add them.
extension KernelSource {
    static let experts = #"""
// ---------------------------------------------------------------------------------------------
// Routed experts.

// out [c, d] = rows idx[0 ..< c] of x [*, d]. grid (c), block 256.
extern "C" __global__ void gather_rows(const float* x, const int* idx, int d, float* out) { PDL_ENTRY();
    const float* src = x + (u64)idx[blockIdx.x] * d;
    float* dst = out + (u64)blockIdx.x * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dst[i] = src[i];
}

// slots[dest[r]] = y[r] · w[r] for rows r < c of d. grid (c), block 256.
extern "C" __global__ void scatter_scaled(const float* y, const int* dest, const float* w, int d, float* slots) { PDL_ENTRY();
    const float* src = y + (u64)blockIdx.x * d;
    float* dst = slots + (u64)dest[blockIdx.x] * d;
    const float s = w[blockIdx.x];
    for (int i = threadIdx.x; i < d; i += blockDim.x) dst[i] = src[i] * s;
}

// All routed experts of a chunk in one launch per matrix family: expert e's gathered rows are
// rows start[e] ..< start[e + 1] of the activations (quantized once for every pair) and of the
// outputs; its matrices are W0 + e · stride and, when W1 is given, W1 + e · stride in the same
// launch (gate and up). Block row blockIdx.y takes tile (e, t0) = tiles[blockIdx.y]: tokens
// t0 … t0 + 7 of expert e — a grid of exactly the tiles there are, whatever the experts' loads.
// The same kernels as one launch per expert (8-token tiles; q4_K's wide loads).
// grid (ceil(rows · (1 or 2) / 4), tile count), block 128.
template <int T> DEV void mmvq_experts_impl(const u8* W0, const u8* W1, u64 stride, int rows, float* y0, float* y1, u64 rowBytes,
                                            int cols, const int* start, const int* tiles, const i8* aq, const float* ad,
                                            const float* as, const int* ai, const float* ak) {
    int e = tiles[2 * blockIdx.y], t0 = tiles[2 * blockIdx.y + 1];
    int r0 = start[e] + t0, tokens = min(8, start[e + 1] - r0);
    if (tokens <= 0) return;
    u64 chunks = cols / 32, o = (u64)r0 * rows;
    const u8* w0 = W0 + e * stride;
    const u8* w1 = W1 ? W1 + e * stride : w0;
    int n1 = W1 ? rows : 0;
    float* z1 = y1 ? y1 + o : y0 + o;
    if constexpr (T == Q4_K) {
        mmvq_q4K_impl(w0, w1, w0, rows, n1, 0, y0 + o, z1, y0 + o, rowBytes, cols, aq + (u64)r0 * cols, ai + r0 * chunks,
                      ak + (u64)r0 * (cols / 256), tokens, 0);
    } else {
        mmvq_impl<T, 8>(w0, w1, w0, rows, n1, 0, y0 + o, z1, y0 + o, rowBytes, cols, aq + (u64)r0 * cols, ad + r0 * chunks,
                        as + r0 * chunks, ai + r0 * chunks, ak + (u64)r0 * (cols / 256), tokens, 0);
    }
}
#define MMVQ_EXPERTS(T, name) extern "C" __global__ void __launch_bounds__(128) name(const u8* W0, const u8* W1, u64 stride, int rows, \
    float* y0, float* y1, u64 rowBytes, int cols, const int* start, const int* tiles, const i8* aq, const float* ad, const float* as, \
    const int* ai, const float* ak) { PDL_ENTRY(); mmvq_experts_impl<T>(W0, W1, stride, rows, y0, y1, rowBytes, cols, start, tiles, aq, ad, as, ai, ak); }
MMVQ_EXPERTS(Q4_0, mmvq_experts_q4_0) MMVQ_EXPERTS(Q4_1, mmvq_experts_q4_1) MMVQ_EXPERTS(Q5_0, mmvq_experts_q5_0)
MMVQ_EXPERTS(Q5_1, mmvq_experts_q5_1) MMVQ_EXPERTS(Q8_0, mmvq_experts_q8_0) MMVQ_EXPERTS(Q4_K, mmvq_experts_q4_K)
MMVQ_EXPERTS(Q5_K, mmvq_experts_q5_K) MMVQ_EXPERTS(Q6_K, mmvq_experts_q6_K)

// q4_K experts on tensor cores (sm_80 and newer; the prompt-sized chunks of the hybrid set-up,
// where an expert sees tens of tokens): block row blockIdx.y takes tile (e, t0) = tiles[...] of
// up to 32 of expert e's rows, a block of 4 warps 64 weight rows (16 per warp; W1's rows after
// W0's when gate and up share the launch). Per 256-element superblock the tile's 8-bit
// activations (q8_K, with their per-32 sums and per-256 scales) are staged in shared memory;
// each warp reads its rows' nibbles straight from the GGUF blocks and, per 32-element
// sub-block, multiplies them with mma.m16n8k32 (u8 weights × s8 activations → exact int32 sums,
// the integers the CPU's dot product forms), then scales each sum as mmvq_q4K_impl does:
// ak · (d·sc · Σ q·a − dmin·m · Σ a). Only the float accumulation order differs from the GEMV.
// A lane of group g (lane / 4), position q (lane % 4) holds bytes 8q … 8q + 7 of each of its
// two rows' 32 nibble bytes (rows g, g + 8), and the activations' bytes at the same positions:
// the mma's k order is permuted alike for both operands, so the sums are the same.
// Needs rows % 16 == 0. grid (ceil(rows · (1 or 2) / 64), tile count), block 128.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define MQE_TOKENS 32
#define MQE_PITCH 288   // bytes per staged activation row: q4_K's 8-byte loads of 8 rows × 4 lanes hit 32 banks
#define MQE_PITCH6 272  // q6_K's 4-byte loads: 8 rows × 4 lanes hit 32 banks
DEV void mma_u8s8(int* c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %10, %10, %10};"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "r"(0));
}
// Superblock s of the tile's activations into shared memory (zeros past its ntok rows): the
// 8-bit values, the per-32 sums (when sai is given) and the per-256 scales. Barriers before
// (the last superblock's readers are done) and after.
template <int PITCH> DEV void mqe_stage(i8* sx, int* sai, float* sak, const i8* __restrict__ aq, const int* __restrict__ ai,
                                        const float* __restrict__ ak, int r0, int ntok, int cols, int s) {
    const int chunks = cols / 32, supers = cols / 256;
    __syncthreads();
    for (int i = threadIdx.x; i < MQE_TOKENS * 16; i += 128) {
        int t = i >> 4, c = i & 15;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (t < ntok) v = *(const uint4*)(aq + (u64)(r0 + t) * cols + s * 256 + c * 16);
        *(uint4*)(sx + t * PITCH + c * 16) = v;
    }
    if (sai)
        for (int i = threadIdx.x; i < MQE_TOKENS * 8; i += 128) {
            int t = i >> 3;
            sai[i] = t < ntok ? ai[(u64)(r0 + t) * chunks + s * 8 + (i & 7)] : 0;
        }
    if (threadIdx.x < MQE_TOKENS) sak[threadIdx.x] = (int)threadIdx.x < ntok ? ak[(u64)(r0 + threadIdx.x) * supers + s] : 0.f;
    __syncthreads();
}
// A block's tile (expert e, its gathered rows r0 … r0 + ntok − 1) and a warp's 16 weight rows
// (rows r … r + 15 of W0, or of W1 past W0's rows; idle past both): lane (g, q) reads rows
// r + g (rowA) and r + g + 8 (rowB). False when the tile is empty (the whole block returns).
struct MqeTile { int r0, ntok, g, q, r; bool active; const u8* rowA; const u8* rowB; float* y; };
DEV bool mqe_tile(MqeTile& T, const u8* W0, const u8* W1, u64 stride, int rows, float* y0, float* y1, u64 rowBytes,
                  const int* start, const int* tiles) {
    const int e = tiles[2 * blockIdx.y];
    T.r0 = start[e] + tiles[2 * blockIdx.y + 1];
    T.ntok = min(MQE_TOKENS, start[e + 1] - T.r0);
    if (T.ntok <= 0) return false;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    T.g = lane >> 2; T.q = lane & 3;
    const int total = rows + (W1 ? rows : 0), rb = (blockIdx.x * 4 + warp) * 16;
    T.active = rb < total;
    const bool second = rb >= rows;
    T.r = second ? rb - rows : rb;
    T.rowA = (second ? W1 : W0) + e * stride + (u64)(T.r + T.g) * rowBytes;
    T.rowB = T.rowA + 8 * rowBytes;
    T.y = second ? y1 : y0;
    return true;
}
// The warp's accumulators (C fragments of four n-tiles: rows g / g + 8, tokens 2q / 2q + 1 of
// each) to y [tokens, rows], the tile's rows only.
DEV void mqe_store(const MqeTile& T, const float (&acc)[4][4], int rows) {
    if (!T.active) return;
#pragma unroll
    for (int n = 0; n < 4; n++) {
        const int t = n * 8 + 2 * T.q;
        float* y = T.y + T.r + T.g;
        if (t < T.ntok) { y[(u64)(T.r0 + t) * rows] = acc[n][0]; y[(u64)(T.r0 + t) * rows + 8] = acc[n][2]; }
        if (t + 1 < T.ntok) { y[(u64)(T.r0 + t + 1) * rows] = acc[n][1]; y[(u64)(T.r0 + t + 1) * rows + 8] = acc[n][3]; }
    }
}
extern "C" __global__ void __launch_bounds__(128) mmq_experts_q4_K(const u8* W0, const u8* W1, u64 stride, int rows, float* y0, float* y1,
    u64 rowBytes, int cols, const int* start, const int* tiles, const i8* __restrict__ aq, const int* __restrict__ ai,
    const float* __restrict__ ak) {
    __shared__ __align__(16) i8 sx[MQE_TOKENS * MQE_PITCH];
    __shared__ int sai[MQE_TOKENS * 8];
    __shared__ float sak[MQE_TOKENS];
    PDL_ENTRY();
    MqeTile T;
    if (!mqe_tile(T, W0, W1, stride, rows, y0, y1, rowBytes, start, tiles)) return;
    const int r0 = T.r0, ntok = T.ntok, g = T.g, q = T.q;
    const bool active = T.active;
    const u8* rowA = T.rowA;
    const u8* rowB = T.rowB;
    const int supers = cols / 256;
    float acc[4][4];
#pragma unroll
    for (int n = 0; n < 4; n++) { acc[n][0] = 0.f; acc[n][1] = 0.f; acc[n][2] = 0.f; acc[n][3] = 0.f; }
    for (int s = 0; s < supers; s++) {
        // The warp's weights first (they depend on nothing staged), then the tile's activations.
        uint4 ha = make_uint4(0, 0, 0, 0), hb = ha;
        uint2 qa[4], qb[4];
        if (active) {
            const u8* ka = rowA + s * 144;
            const u8* kb = rowB + s * 144;
            ha = *(const uint4*)ka; hb = *(const uint4*)kb;
#pragma unroll
            for (int p = 0; p < 4; p++) { qa[p] = *(const uint2*)(ka + 16 + 32 * p + 8 * q); qb[p] = *(const uint2*)(kb + 16 + 32 * p + 8 * q); }
        }
        mqe_stage<MQE_PITCH>(sx, sai, sak, aq, ai, ak, r0, ntok, cols, s);
        if (!active) continue;
        const float dA = h2f((u16)(ha.x & 0xffffu)), mA = h2f((u16)(ha.x >> 16));
        const float dB = h2f((u16)(hb.x & 0xffffu)), mB = h2f((u16)(hb.x >> 16));
#pragma unroll
        for (int p = 0; p < 4; p++) {
            int sa0, ma0, sa1, ma1, sb0, mb0, sb1, mb1;
            scale_min_pair(ha, p, sa0, ma0, sa1, ma1);
            scale_min_pair(hb, p, sb0, mb0, sb1, mb1);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int j = 2 * p + h, sh = 4 * h;
                const u32 a0 = (qa[p].x >> sh) & 0x0F0F0F0Fu, a1 = (qb[p].x >> sh) & 0x0F0F0F0Fu;
                const u32 a2 = (qa[p].y >> sh) & 0x0F0F0F0Fu, a3 = (qb[p].y >> sh) & 0x0F0F0F0Fu;
                const float scA = dA * (float)(h ? sa1 : sa0), mnA = mA * (float)(h ? ma1 : ma0);
                const float scB = dB * (float)(h ? sb1 : sb0), mnB = mB * (float)(h ? mb1 : mb0);
#pragma unroll
                for (int n = 0; n < 4; n++) {
                    const uint2 b = *(const uint2*)(sx + (n * 8 + g) * MQE_PITCH + 32 * j + 8 * q);
                    int c[4];
                    mma_u8s8(c, a0, a1, a2, a3, b.x, b.y);
                    const int t = n * 8 + 2 * q;
                    const float k0 = sak[t], k1 = sak[t + 1];
                    const float i0 = (float)sai[t * 8 + j], i1 = (float)sai[(t + 1) * 8 + j];
                    acc[n][0] += k0 * (scA * (float)c[0] - mnA * i0);
                    acc[n][1] += k1 * (scA * (float)c[1] - mnA * i1);
                    acc[n][2] += k0 * (scB * (float)c[2] - mnB * i0);
                    acc[n][3] += k1 * (scB * (float)c[3] - mnB * i1);
                }
            }
        }
    }
    mqe_store(T, acc, rows);
}

// q6_K experts on tensor cores (the down projections of Q4_K_M files): the same tiles, grid and
// staging as mmq_experts_q4_K; q6_K's scales cover 16 elements, so each 32-element chunk is two
// mma.m16n8k16 s8 × s8 (lane q holds elements 4q … 4q + 3 of each half, as the fragments lay
// them out), each int32 sum times d · scale, then the token's ak — as mmvq_impl<Q6_K>:
// ak · (d·sc₁ · Σ₁ + d·sc₂ · Σ₂). SWIFTKT_EXPERTS_MMA_Q6K=0 turns it off.
DEV void mma_s8s8_k16(int* c, u32 a0, u32 a1, u32 b0) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %7, %7, %7};"
                 : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3]) : "r"(a0), "r"(a1), "r"(b0), "r"(0));
}
// Bytes 4q … 4q + 3 of half h of 32-element chunk (n, quarter) of a q6_K superblock at k, as s8.
DEV u32 q6_quad(const u8* k, int n, int quarter, int h, int q) {
    // (q6_K blocks are 210 bytes: only 2-byte alignment.)
    u32 lo = ld32(k + 64 * n + ((quarter & 1) ? 32 : 0) + 16 * h + 4 * q);
    u32 hi = ld32(k + 128 + 32 * n + 16 * h + 4 * q);
    u32 nib = quarter >= 2 ? ((lo >> 4) & 0x0F0F0F0Fu) : (lo & 0x0F0F0F0Fu);
    return __vsub4(nib | (((hi >> (2 * quarter)) & 0x03030303u) << 4), 0x20202020u);
}
extern "C" __global__ void __launch_bounds__(128) mmq_experts_q6_K(const u8* W0, const u8* W1, u64 stride, int rows, float* y0, float* y1,
    u64 rowBytes, int cols, const int* start, const int* tiles, const i8* __restrict__ aq, const int* __restrict__ ai,
    const float* __restrict__ ak) {
    __shared__ __align__(16) i8 sx[MQE_TOKENS * MQE_PITCH6];
    __shared__ float sak[MQE_TOKENS];
    PDL_ENTRY();
    MqeTile T;
    if (!mqe_tile(T, W0, W1, stride, rows, y0, y1, rowBytes, start, tiles)) return;
    const int r0 = T.r0, ntok = T.ntok, g = T.g, q = T.q;
    const bool active = T.active;
    const u8* rowA = T.rowA;
    const u8* rowB = T.rowB;
    const int supers = cols / 256;
    float acc[4][4];
#pragma unroll
    for (int n = 0; n < 4; n++) { acc[n][0] = 0.f; acc[n][1] = 0.f; acc[n][2] = 0.f; acc[n][3] = 0.f; }
    for (int s = 0; s < supers; s++) {
        mqe_stage<MQE_PITCH6>(sx, nullptr, sak, aq, ai, ak, r0, ntok, cols, s);
        if (!active) continue;
        const u8* ka = rowA + s * 210;
        const u8* kb = rowB + s * 210;
        const float dA = h2f(ld16(ka + 208)), dB = h2f(ld16(kb + 208));
#pragma unroll 2
        for (int c = 0; c < 8; c++) {
            const int n = c >> 2, quarter = c & 3;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const u32 a0 = q6_quad(ka, n, quarter, h, q), a1 = q6_quad(kb, n, quarter, h, q);
                const float scA = dA * (float)(i8)ka[192 + 8 * n + 2 * quarter + h];
                const float scB = dB * (float)(i8)kb[192 + 8 * n + 2 * quarter + h];
#pragma unroll
                for (int m = 0; m < 4; m++) {
                    const u32 b = *(const u32*)(sx + (m * 8 + g) * MQE_PITCH6 + 32 * c + 16 * h + 4 * q);
                    int d[4];
                    mma_s8s8_k16(d, a0, a1, b);
                    const int t = m * 8 + 2 * q;
                    const float k0 = sak[t], k1 = sak[t + 1];
                    acc[m][0] += k0 * (scA * (float)d[0]);
                    acc[m][1] += k1 * (scA * (float)d[1]);
                    acc[m][2] += k0 * (scB * (float)d[2]);
                    acc[m][3] += k1 * (scB * (float)d[3]);
                }
            }
        }
    }
    mqe_store(T, acc, rows);
}
#endif

// An MoE router (F32 weights [E, n], n a multiple of 16) for one token with the CPU's arithmetic
// (CPUKernels' floatRows, llama.cpp's tinyBLAS order): per row 16 lane accumulators, lane j
// fma(w[l + j], x[l + j], acc) for l = 0, 16, …, then reduce16's tree — (v[i] + v[i + 8]),
// (h[i] + h[i + 4]), (h[0] + h[2]) + (h[1] + h[3]) — so the logits, and the experts chosen
// from them, are the CPU's bit for bit. A half-warp per row. grid ceil(E / 8), block 128.
extern "C" __global__ void router_exact_f32(const float* W, const float* x, int n, int E, float* y) { PDL_ENTRY();
    const int row = blockIdx.x * 8 + (threadIdx.x >> 4), j = threadIdx.x & 15;
    const bool ok = row < E;
    const float* w = W + (u64)(ok ? row : 0) * n;
    float acc = 0.f;
    if (ok) for (int l = 0; l < n; l += 16) acc = fmaf(w[l + j], x[l + j], acc);
    // Lanes of one half-warp: xor offsets below 16 stay inside it.
    float h8 = acc + __shfl_xor_sync(0xffffffffu, acc, 8);     // lanes j < 8: v[j] + v[j + 8]
    float h4 = h8 + __shfl_xor_sync(0xffffffffu, h8, 4);       // lanes j < 4: h8[j] + h8[j + 4]
    float p = h4 + __shfl_xor_sync(0xffffffffu, h4, 2);        // lane 0: h4[0] + h4[2]; lane 1: h4[1] + h4[3]
    float r = p + __shfl_xor_sync(0xffffffffu, p, 1);          // lane 0: (h4[0] + h4[2]) + (h4[1] + h4[3])
    if (ok && j == 0) y[row] = r;
}

// out[i] = slots[0][i] + slots[1][i] + ... (in slot order), count floats per slot.
extern "C" __global__ void sum_slots(const float* slots, int used, u64 count, float* out) { PDL_ENTRY();
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x) {
        float v = slots[i];
        for (int s = 1; s < used; s++) v += slots[(u64)s * count + i];
        out[i] = v;
    }
}
"""#
}
