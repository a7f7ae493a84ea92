// The CUDA C++ source of every GPU operator, compiled at run time by NVRTC for the device's
// architecture (NVRTC.swift caches the cubin on disk). No CUDA headers are included: halves
// are converted with PTX `cvt`, and the integer dot products use NVRTC's built-in __dp4a and
// __vsub4. Layouts:
//
// - Weights stay in their GGUF blocks (row-major, `rowBytes` per row) — the same bytes as the
//   file. Linear layers quantize the activations first, in the format the weight type's CPU
//   dot product uses (q8_0 / q8_1 per 32 elements with f16-rounded scales, q8_K per 256 with
//   the signed-maximum scale), so each 32-element chunk's integer sum equals the CPU's; only
//   the float accumulation order differs.
// - Activations: q [T, n] int8; per 32-chunk: scale `ad`, f16-rounded d·Σq `as` (q8_1), Σq `ai`;
//   per 256: scale `ak` (q8_K).
// - KV cache: f16 rows [capacity, kvHeads · headDim] per layer, keys and values apart.
// - Attention: split-K ("flash-decoding"): blocks (head, token, split) each run an online
//   softmax over their key range and write (max, sum, acc[D]); a second kernel combines them.
//
// Type codes follow ggml: 0 f32, 1 f16, 2 q4_0, 3 q4_1, 6 q5_0, 7 q5_1, 8 q8_0, 12 q4_K,
// 13 q5_K, 14 q6_K, 30 bf16.
enum KernelSource {
    /// Everything NVRTC compiles: the operators below, sampling (KernelSource+Sampling), the
    /// Marlin-class 4-bit GEMM (KernelSource+Marlin), the routed experts' gather and scatter
    /// (KernelSource+Experts), the decode step's fused kernels (KernelSource+Decode) and
    /// multi-head latent attention's rope, cache store and merge (KernelSource+MLA).
    static var all: String { text + sampling + marlin + experts + decode + mla }

    static let text = #"""
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define DEV static __device__ __forceinline__
#define NEG_INF __int_as_float(0xff800000)
// Programmatic dependent launch (sm_90): a kernel waits for the kernels before it to finish
// (and their writes to be visible) before touching memory, then lets the next kernel's blocks
// be scheduled; launched without the attribute both are no-ops.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PDL_WAIT() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
#else
#define PDL_WAIT()
#endif
#if defined(SWIFTKT_TIMELINE)
// The decode step's timeline (GPU.timelineStep, `SWIFTKT_CUDA_TIMELINE`; compiled in only then):
// while tl_on, lane 0 of every warp writes {grid, start, release, end} into its multiprocessor's
// region: %gridid; %globaltimer ns at TL_BEGIN (the kernel's entry where it works before the
// wait, else just before the wait), when the wait returns, and when the scope holding TL_BEGIN
// ends.
#define TL_SLOTS 256  // multiprocessor regions (TimelineState.slots)
__device__ unsigned long long* tl_records;
__device__ unsigned* tl_counts;
__device__ int tl_on, tl_capacity;
extern "C" __global__ void timeline_set(unsigned long long* records, unsigned* counts, int capacity, int on) {
    PDL_WAIT();
    tl_records = records; tl_counts = counts; tl_capacity = capacity; tl_on = on;
}
static __device__ __forceinline__ unsigned long long tl_now() { unsigned long long t; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); return t; }
struct TimelineMark {
    unsigned long long t0, t1;
    __device__ TimelineMark() { t0 = tl_now(); t1 = t0; }
    __device__ void released() { t1 = tl_now(); }
    __device__ ~TimelineMark() {
        if (!tl_on || (threadIdx.x & 31) != 0) return;
        unsigned long long t2 = tl_now(), grid;
        unsigned sm;
        asm volatile("mov.u64 %0, %%gridid;" : "=l"(grid));
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        if (sm >= TL_SLOTS) return;
        unsigned i = atomicAdd(&tl_counts[sm], 1u);
        if (i >= (unsigned)tl_capacity) return;
        unsigned long long* r = tl_records + ((unsigned long long)sm * tl_capacity + i) * 4;
        r[0] = grid; r[1] = t0; r[2] = t1; r[3] = t2;
    }
};
#define TL_BEGIN() TimelineMark tl_mark_
#define TL_RELEASED() tl_mark_.released()
#else
#define TL_BEGIN()
#define TL_RELEASED()
#endif
#define PDL_ENTRY() TL_BEGIN(); PDL_WAIT(); TL_RELEASED()
// For kernels that load what no kernel writes (weights, cache rows of earlier steps) before
// the wait: TL_BEGIN() at the kernel's top, PDL_WAIT_HERE where it waits.
#define PDL_WAIT_HERE [&] { PDL_WAIT(); TL_RELEASED(); }

DEV float h2f(u16 h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
DEV u16 f2h(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
DEV u16 ld16(const u8* p) { return *(const u16*)p; }
// 4 bytes at a 2-byte aligned address.
DEV u32 ld32(const u8* p) { const u16* q = (const u16*)p; return (u32)q[0] | ((u32)q[1] << 16); }
// Bits 0..3 of `b` to bit 4 of bytes 0..3.
DEV u32 expand4(u32 b) { return ((b & 1u) << 4) | ((b & 2u) << 11) | ((b & 4u) << 18) | ((b & 8u) << 25); }

DEV float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
DEV float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
DEV int warp_isum(int v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

enum { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30 };

// q4_K / q5_K 6-bit scale and min of sub-block j.
DEV void scale_min_k4(int j, const u8* q, int& sc, int& m) {
    if (j < 4) { sc = q[j] & 63; m = q[j + 4] & 63; }
    else { sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4); }
}

// The scales and mins of sub-blocks 2pr and 2pr+1 from a q4_K / q5_K superblock's first 16
// bytes, loaded at once (d, dmin in h.x; the 12 scale bytes in h.y, h.z, h.w): byte
// extraction in registers instead of a load per byte.
DEV void scale_min_pair(const uint4 h, int pr, int& sa, int& ma, int& sb, int& mb) {
    int b0 = (2 * pr) & 3;
    u32 y = h.y >> (8 * b0), z = h.z >> (8 * b0), w = h.w >> (8 * b0);
    if (pr < 2) {
        sa = y & 63; ma = z & 63; sb = (y >> 8) & 63; mb = (z >> 8) & 63;
    } else {
        sa = (w & 0xF) | (((y >> 6) & 3) << 4); ma = ((w >> 4) & 0xF) | (((z >> 6) & 3) << 4);
        sb = ((w >> 8) & 0xF) | (((y >> 14) & 3) << 4); mb = ((w >> 12) & 0xF) | (((z >> 14) & 3) << 4);
    }
}

// ---------------------------------------------------------------------------------------------
// Element-wise dequantization (embeddings, tests).

template <int T> DEV float dq(const u8* row, int i) {
    if constexpr (T == F32) { return ((const float*)row)[i]; }
    if constexpr (T == F16) { return h2f(((const u16*)row)[i]); }
    if constexpr (T == BF16) { return __uint_as_float(((u32)((const u16*)row)[i]) << 16); }
    int b = i / 32, j = i % 32;
    if constexpr (T == Q4_0) {
        const u8* k = row + b * 18; u8 x = k[2 + (j & 15)];
        return h2f(ld16(k)) * (float)((j < 16 ? (x & 15) : (x >> 4)) - 8);
    }
    if constexpr (T == Q4_1) {
        const u8* k = row + b * 20; u8 x = k[4 + (j & 15)];
        return h2f(ld16(k)) * (float)(j < 16 ? (x & 15) : (x >> 4)) + h2f(ld16(k + 2));
    }
    if constexpr (T == Q5_0) {
        const u8* k = row + b * 22; u8 x = k[6 + (j & 15)]; u32 qh = ld32(k + 2);
        int q = (j < 16 ? (x & 15) : (x >> 4)) | (((qh >> j) & 1) << 4);
        return h2f(ld16(k)) * (float)(q - 16);
    }
    if constexpr (T == Q5_1) {
        const u8* k = row + b * 24; u8 x = k[8 + (j & 15)]; u32 qh = ld32(k + 4);
        int q = (j < 16 ? (x & 15) : (x >> 4)) | (((qh >> j) & 1) << 4);
        return h2f(ld16(k)) * (float)q + h2f(ld16(k + 2));
    }
    if constexpr (T == Q8_0) {
        const u8* k = row + b * 34;
        return h2f(ld16(k)) * (float)(i8)k[2 + j];
    }
    int s = i / 256, e = i % 256, c = e / 32, l = e % 32;
    if constexpr (T == Q4_K || T == Q5_K) {
        const u8* k = row + s * (T == Q4_K ? 144 : 176);
        int sc, m; scale_min_k4(c, k + 4, sc, m);
        const u8* qs = k + (T == Q4_K ? 16 : 48);
        u8 x = qs[32 * (c / 2) + l];
        int q = (c & 1) ? (x >> 4) : (x & 15);
        if constexpr (T == Q5_K) q += ((k[16 + l] >> c) & 1) << 4;
        return h2f(ld16(k)) * (float)sc * (float)q - h2f(ld16(k + 2)) * (float)m;
    }
    if constexpr (T == Q6_K) {
        const u8* k = row + s * 210;
        int n = c / 4, quarter = c % 4;
        const u8* ql = k + 64 * n + ((quarter & 1) ? 32 : 0);
        u8 x = ql[l];
        int nib = quarter >= 2 ? (x >> 4) : (x & 15);
        int h = (k[128 + 32 * n + l] >> (2 * quarter)) & 3;
        int sc = (i8)k[192 + 8 * n + 2 * quarter + l / 16];
        return h2f(ld16(k + 208)) * (float)sc * (float)((nib | (h << 4)) - 32);
    }
    return 0.f;
}

// out [count, cols] = rows ids[t] of W, times scale.
// grid (tokens, pieces of the row): a one-token step's row over 16 blocks of one element per
// thread, so its loads are in flight together (one block of 16 in turn took 6.7 µs on an H100).
template <int T> DEV void embed_impl(const u8* W, u64 rowBytes, int cols, const int* ids, float scale, float* out) {
    int t = blockIdx.x;
    const u8* row = W + (u64)ids[t] * rowBytes;
    for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < cols; i += blockDim.x * gridDim.y) out[(u64)t * cols + i] = dq<T>(row, i) * scale;
}
#define EMBED(T, name) extern "C" __global__ void name(const u8* W, u64 rowBytes, int cols, const int* ids, float scale, float* out) { PDL_ENTRY(); embed_impl<T>(W, rowBytes, cols, ids, scale, out); }
EMBED(F32, embed_f32) EMBED(F16, embed_f16) EMBED(BF16, embed_bf16) EMBED(Q4_0, embed_q4_0) EMBED(Q4_1, embed_q4_1)
EMBED(Q5_0, embed_q5_0) EMBED(Q5_1, embed_q5_1) EMBED(Q8_0, embed_q8_0) EMBED(Q4_K, embed_q4_K) EMBED(Q5_K, embed_q5_K)
EMBED(Q6_K, embed_q6_K)

// Rows of W dequantized to f16 (the weights of a prefill GEMM): grid (blocks over cols, rows).
template <int T> DEV void dequant_f16_impl(const u8* W, u64 rowBytes, int cols, u16* out) {
    int r = blockIdx.y;
    const u8* row = W + (u64)r * rowBytes;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < cols; i += gridDim.x * blockDim.x)
        out[(u64)r * cols + i] = f2h(dq<T>(row, i));
}
#define DEQ(T, name) extern "C" __global__ void name(const u8* W, u64 rowBytes, int cols, u16* out) { PDL_ENTRY(); dequant_f16_impl<T>(W, rowBytes, cols, out); }
DEQ(F32, dequant_f16_f32) DEQ(F16, dequant_f16_f16) DEQ(BF16, dequant_f16_bf16) DEQ(Q4_0, dequant_f16_q4_0) DEQ(Q4_1, dequant_f16_q4_1)
DEQ(Q5_0, dequant_f16_q5_0) DEQ(Q5_1, dequant_f16_q5_1) DEQ(Q8_0, dequant_f16_q8_0) DEQ(Q4_K, dequant_f16_q4_K) DEQ(Q5_K, dequant_f16_q5_K)
DEQ(Q6_K, dequant_f16_q6_K)

// Eight consecutive elements i … i + 7 (i a multiple of 8: one 32-element block or sub-block, one
// scale) of a row, the scale decoded once; other types element by element.
template <int T> DEV void dq8(const u8* row, int i, float* v) {
    if constexpr (T == Q4_K) {
        int s = i / 256, e = i % 256, c = e / 32, l0 = e % 32;
        const u8* k = row + s * 144;
        int sc, m; scale_min_k4(c, k + 4, sc, m);
        float d = h2f(ld16(k)) * (float)sc, mn = h2f(ld16(k + 2)) * (float)m;
        uint2 x = *(const uint2*)(k + 16 + 32 * (c / 2) + l0);
        u32 w[2] = {x.x, x.y};
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int b = (w[j / 4] >> (8 * (j % 4))) & 0xFF;
            v[j] = d * (float)((c & 1) ? (b >> 4) : (b & 15)) - mn;
        }
    } else if constexpr (T == Q6_K) {
        int s = i / 256, e = i % 256, c = e / 32, l0 = e % 32, n = c / 4, quarter = c % 4;
        const u8* k = row + s * 210;
        const u8* ql = k + 64 * n + ((quarter & 1) ? 32 : 0) + l0;
        const u8* qh = k + 128 + 32 * n + l0;
        float d = h2f(ld16(k + 208)) * (float)(i8)k[192 + 8 * n + 2 * quarter + l0 / 16];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            int nib = quarter >= 2 ? (ql[j] >> 4) : (ql[j] & 15);
            int h = (qh[j] >> (2 * quarter)) & 3;
            v[j] = d * (float)((nib | (h << 4)) - 32);
        }
    } else if constexpr (T == Q8_0) {
        const u8* k = row + (i / 32) * 34;
        float d = h2f(ld16(k));
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = d * (float)(i8)k[2 + i % 32 + j];
    } else if constexpr (T == Q4_0) {
        int j0 = i % 32;
        const u8* k = row + (i / 32) * 18;
        float d = h2f(ld16(k));
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u8 x = k[2 + ((j0 + j) & 15)];
            v[j] = d * (float)((j0 < 16 ? (x & 15) : (x >> 4)) - 8);
        }
    } else {
#pragma unroll
        for (int j = 0; j < 8; j++) v[j] = dq<T>(row, i + j);
    }
}

// Rows of W dequantized to f16, eight elements per thread and one 16-byte store (cols a
// multiple of 8): grid ceil(rows · cols / 8 / 256), block 256.
template <int T> DEV void dequant8_f16_impl(const u8* W, u64 rowBytes, int cols, u64 groups, u16* out) {
    u64 gi = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (gi >= groups) return;
    u64 e = gi * 8, r = e / (u64)cols;
    float v[8];
    dq8<T>(W + r * rowBytes, (int)(e - r * (u64)cols), v);
    uint4 o;
    o.x = (u32)f2h(v[0]) | ((u32)f2h(v[1]) << 16); o.y = (u32)f2h(v[2]) | ((u32)f2h(v[3]) << 16);
    o.z = (u32)f2h(v[4]) | ((u32)f2h(v[5]) << 16); o.w = (u32)f2h(v[6]) | ((u32)f2h(v[7]) << 16);
    *(uint4*)(out + e) = o;
}
#define DEQ8(T, name) extern "C" __global__ void __launch_bounds__(256) name(const u8* W, u64 rowBytes, int cols, u64 groups, u16* out) { PDL_ENTRY(); dequant8_f16_impl<T>(W, rowBytes, cols, groups, out); }
DEQ8(F32, dequant8_f16_f32) DEQ8(F16, dequant8_f16_f16) DEQ8(BF16, dequant8_f16_bf16) DEQ8(Q4_0, dequant8_f16_q4_0)
DEQ8(Q4_1, dequant8_f16_q4_1) DEQ8(Q5_0, dequant8_f16_q5_0) DEQ8(Q5_1, dequant8_f16_q5_1) DEQ8(Q8_0, dequant8_f16_q8_0)
DEQ8(Q4_K, dequant8_f16_q4_K) DEQ8(Q5_K, dequant8_f16_q5_K) DEQ8(Q6_K, dequant8_f16_q6_K)

// y[i] = f16(x[i])
extern "C" __global__ void to_f16(const float* x, u16* y, u64 count) { PDL_ENTRY();
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) y[i] = f2h(x[i]);
}

// ---------------------------------------------------------------------------------------------
// Activation quantization. fmt 0: q8_0 / q8_1 (per 32, amax/127, f16-rounded d and d·Σq);
// fmt 1: q8_K (per 256, -127 / signed max). One warp per 32 elements; x [T, n].

// One warp's 32 values v (lane order) into q8_0 / q8_1 block `blk`.
DEV void q8_32_warp(float v, u64 blk, int lane, i8* q, float* ad, float* as, int* ai) {
    float amax = warp_max(fabsf(v));
    float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    int qi = __float2int_rn(v * id);
    q[blk * 32 + lane] = (i8)qi;
    int sum = warp_isum(qi);
    if (lane == 0) { ad[blk] = h2f(f2h(d)); as[blk] = h2f(f2h(d * (float)sum)); ai[blk] = sum; }
}

extern "C" __global__ void quantize_q8_32(const float* x, int n, int blocks, i8* q, float* ad, float* as, int* ai) { PDL_ENTRY();
    int gw = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (gw >= blocks) return;
    q8_32_warp(x[(u64)gw * 32 + lane], gw, lane, q, ad, as, ai);
}

// The warp's largest |value| as (magnitude a, signed value val, index idx), the lowest index
// on ties (the CPU's strict > scan keeps the first).
DEV void warp_max_first(float& a, float& val, int& idx) {
    for (int o = 16; o > 0; o >>= 1) {
        float a2 = __shfl_xor_sync(0xffffffffu, a, o), v2 = __shfl_xor_sync(0xffffffffu, val, o);
        int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        if (a2 > a || (a2 == a && i2 < idx)) { a = a2; val = v2; idx = i2; }
    }
}

// A block of 256 threads' values v (thread order) into q8_K superblock `sb`.
DEV void q8_K_block(float v, u64 sb, i8* q, float* ak, int* ai) {
    __shared__ float sabs[8], sval[8]; __shared__ int sidx[8]; __shared__ float smax;
    int i = threadIdx.x, lane = i & 31, w = i >> 5;
    float a = fabsf(v), val = v; int idx = i;
    warp_max_first(a, val, idx);
    if (lane == 0) { sabs[w] = a; sidx[w] = idx; sval[w] = val; }
    __syncthreads();
    if (i == 0) {
        float best = sabs[0]; int bi = sidx[0]; float bv = sval[0];
        for (int k = 1; k < 8; k++) if (sabs[k] > best || (sabs[k] == best && sidx[k] < bi)) { best = sabs[k]; bi = sidx[k]; bv = sval[k]; }
        smax = best == 0.f ? 0.f : bv;
    }
    __syncthreads();
    float mx = smax;
    int qi = 0;
    if (mx != 0.f) { float iscale = -127.f / mx; qi = min(127, __float2int_rn(iscale * v)); }
    q[sb * 256 + i] = (i8)qi;
    int sum = warp_isum(qi);
    if (lane == 0) ai[sb * 8 + w] = sum;
    if (i == 0) ak[sb] = mx != 0.f ? 1.f / (-127.f / mx) : 0.f;
}

// One block of 256 threads per 256 elements.
extern "C" __global__ void quantize_q8_K(const float* x, i8* q, float* ak, int* ai) { PDL_ENTRY();
    q8_K_block(x[(u64)blockIdx.x * 256 + threadIdx.x], blockIdx.x, q, ak, ai);
}

// ---------------------------------------------------------------------------------------------
// Quantized GEMV / small GEMM: y[t, r] = W[r] · x[t]. A warp per row, lanes over 32-element
// chunks; up to 8 tokens per block reuse each decoded chunk. grid (ceil(rows / 4), ceil(T / 8)).

template <int T> DEV void decode_chunk(const u8* row, int c, int* w, float& d1, float& d2, float& m) {
    d2 = 0.f; m = 0.f;
    if constexpr (T == Q4_0 || T == Q4_1) {
        const u8* k = row + c * (T == Q4_0 ? 18 : 20);
        d1 = h2f(ld16(k));
        if constexpr (T == Q4_1) m = h2f(ld16(k + 2));
        const u8* qs = k + (T == Q4_0 ? 2 : 4);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            u32 v = ld32(qs + 4 * j);
            u32 lo = v & 0x0F0F0F0Fu, hi = (v >> 4) & 0x0F0F0F0Fu;
            if constexpr (T == Q4_0) { lo = __vsub4(lo, 0x08080808u); hi = __vsub4(hi, 0x08080808u); }
            w[j] = (int)lo; w[j + 4] = (int)hi;
        }
    }
    if constexpr (T == Q5_0 || T == Q5_1) {
        const u8* k = row + c * (T == Q5_0 ? 22 : 24);
        d1 = h2f(ld16(k));
        if constexpr (T == Q5_1) m = h2f(ld16(k + 2));
        u32 qh = ld32(k + (T == Q5_0 ? 2 : 4));
        const u8* qs = k + (T == Q5_0 ? 6 : 8);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            u32 v = ld32(qs + 4 * j);
            u32 lo = (v & 0x0F0F0F0Fu) | expand4((qh >> (4 * j)) & 15u);
            u32 hi = ((v >> 4) & 0x0F0F0F0Fu) | expand4((qh >> (16 + 4 * j)) & 15u);
            if constexpr (T == Q5_0) { lo = __vsub4(lo, 0x10101010u); hi = __vsub4(hi, 0x10101010u); }
            w[j] = (int)lo; w[j + 4] = (int)hi;
        }
    }
    if constexpr (T == Q8_0) {
        const u8* k = row + c * 34;
        d1 = h2f(ld16(k));
#pragma unroll
        for (int j = 0; j < 8; j++) w[j] = (int)ld32(k + 2 + 4 * j);
    }
    if constexpr (T == Q4_K || T == Q5_K) {
        int s = c / 8, sub = c % 8;
        const u8* k = row + s * (T == Q4_K ? 144 : 176);
        int sc, mn; scale_min_k4(sub, k + 4, sc, mn);
        d1 = h2f(ld16(k)) * (float)sc; m = h2f(ld16(k + 2)) * (float)mn;
        const u8* qs = k + (T == Q4_K ? 16 : 48) + 32 * (sub / 2);
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u32 v = ld32(qs + 4 * j);
            u32 nib = (sub & 1) ? ((v >> 4) & 0x0F0F0F0Fu) : (v & 0x0F0F0F0Fu);
            if constexpr (T == Q5_K) nib |= ((ld32(k + 16 + 4 * j) >> sub) & 0x01010101u) << 4;
            w[j] = (int)nib;
        }
    }
    if constexpr (T == Q6_K) {
        int s = c / 8, sub = c % 8, n = sub / 4, quarter = sub % 4;
        const u8* k = row + s * 210;
        float d = h2f(ld16(k + 208));
        d1 = d * (float)(i8)k[192 + 8 * n + 2 * quarter];
        d2 = d * (float)(i8)k[192 + 8 * n + 2 * quarter + 1];
        const u8* ql = k + 64 * n + ((quarter & 1) ? 32 : 0);
        const u8* qh = k + 128 + 32 * n;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            u32 v = ld32(ql + 4 * j);
            u32 nib = quarter >= 2 ? ((v >> 4) & 0x0F0F0F0Fu) : (v & 0x0F0F0F0Fu);
            u32 h = ((ld32(qh + 4 * j) >> (2 * quarter)) & 0x03030303u) << 4;
            w[j] = (int)__vsub4(nib | h, 0x20202020u);
        }
    }
}

// Up to three matrices of the same type and width reading the same activations (q, k, v; gate,
// up) in one launch: the grid's warps run over their rows one matrix after the other.
struct Sel { const u8* W; int r; float* y; int ldy; };
DEV bool select3(int g, const u8* W0, const u8* W1, const u8* W2, int n0, int n1, int n2, float* y0, float* y1, float* y2, Sel& s) {
    if (g < n0) { s.W = W0; s.r = g; s.y = y0; s.ldy = n0; return true; }
    g -= n0;
    if (g < n1) { s.W = W1; s.r = g; s.y = y1; s.ldy = n1; return true; }
    g -= n1;
    if (g < n2) { s.W = W2; s.r = g; s.y = y2; s.ldy = n2; return true; }
    return false;
}
#define MATS const u8* W0, const u8* W1, const u8* W2, int n0, int n1, int n2, float* y0, float* y1, float* y2
#define MATS_ARGS W0, W1, W2, n0, n1, n2, y0, y1, y2

// Weight rows into L2 before the kernel waits for the one before it (programmatic dependent
// launch: a GEMV's blocks are resident while the small kernel before it runs, and its weights
// depend on nothing). Each warp asks for its own rows with one bulk prefetch per row (sm_90; a
// hint, no-op below or when pf is 0), so DRAM streams them while the small kernel runs instead of
// idling. Ranges rounded out to 16 bytes stay inside the weights' 256-byte-rounded allocation.
DEV void prefetch_l2(const u8* p, u64 n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    u64 a = (u64)p & ~15ull, b = ((u64)p + n + 15) & ~15ull;
    for (; a < b; a += 1u << 20) {
        u32 size = (u32)(b - a < (1u << 20) ? b - a : (1u << 20));
        asm volatile("{\n\t.reg .u64 g;\n\tcvta.to.global.u64 g, %0;\n\tcp.async.bulk.prefetch.L2.global [g], %1;\n\t}"
                     :: "l"(a), "r"(size) : "memory");
    }
#endif
}
// The rows warp w of this block takes: `per` consecutive row indices from (blockIdx.x·4 + w)·per.
DEV void prefetch_warp_rows(MATS, u64 rowBytes, int per, int pf) {
    if (!pf || blockIdx.y != 0 || (threadIdx.x & 31) != 0) return;
    int g = (blockIdx.x * 4 + (threadIdx.x >> 5)) * per;
    for (int i = 0; i < per; i++) {
        Sel s;
        if (!select3(g + i, MATS_ARGS, s)) return;
        prefetch_l2(s.W + (u64)s.r * rowBytes, rowBytes);
    }
}

// Token tile ty (tokens ty·NT …) of `tokens`; the kernels pass blockIdx.y.
template <int T, int NT> __device__ void mmvq_impl(MATS, u64 rowBytes, int cols, const i8* aq, const float* ad,
                                                   const float* as, const int* ai, const float* ak, int tokens, int ty) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    Sel sel;
    if (!select3(blockIdx.x * 4 + warp, MATS_ARGS, sel)) return;
    int r = sel.r, ldy = sel.ldy;
    float* y = sel.y;
    int t0 = ty * NT, nt = min(NT, tokens - t0);
    const u8* row = sel.W + (u64)r * rowBytes;
    int chunks = cols / 32;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.f;
    for (int c = lane; c < chunks; c += 32) {
        int w[8]; float d1, d2, m;
        decode_chunk<T>(row, c, w, d1, d2, m);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t < nt) {
                u64 tc = (u64)(t0 + t) * chunks + c;
                const int* a = (const int*)(aq + tc * 32);
                int s1 = 0, s2 = 0;
#pragma unroll
                for (int j = 0; j < 4; j++) s1 = __dp4a(w[j], a[j], s1);
#pragma unroll
                for (int j = 4; j < 8; j++) s2 = __dp4a(w[j], a[j], s2);
                float v;
                if constexpr (T == Q4_0 || T == Q5_0 || T == Q8_0) v = d1 * ad[tc] * (float)(s1 + s2);
                if constexpr (T == Q4_1 || T == Q5_1) v = d1 * ad[tc] * (float)(s1 + s2) + m * as[tc];
                if constexpr (T == Q4_K || T == Q5_K) v = ak[(u64)(t0 + t) * (cols / 256) + c / 8] * (d1 * (float)(s1 + s2) - m * (float)ai[tc]);
                if constexpr (T == Q6_K) v = ak[(u64)(t0 + t) * (cols / 256) + c / 8] * (d1 * (float)s1 + d2 * (float)s2);
                acc[t] += v;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        if (t < nt) {
            float v = warp_sum(acc[t]);
            if (lane == 0) y[(u64)(t0 + t) * ldy + r] = v;
        }
    }
}
// `name` takes tiles of 8 tokens (grid.y = ceil(T / 8)); `name`_1 one token (fewer registers).
#define MMVQ(T, name) extern "C" __global__ void __launch_bounds__(128) name(MATS, u64 rowBytes, int cols, const i8* aq, const float* ad, const float* as, const int* ai, const float* ak, int tokens, int pf) { prefetch_warp_rows(MATS_ARGS, rowBytes, 1, pf); PDL_ENTRY(); mmvq_impl<T, 8>(MATS_ARGS, rowBytes, cols, aq, ad, as, ai, ak, tokens, blockIdx.y); } \
    extern "C" __global__ void __launch_bounds__(128) name##_1(MATS, u64 rowBytes, int cols, const i8* aq, const float* ad, const float* as, const int* ai, const float* ak, int tokens, int pf) { prefetch_warp_rows(MATS_ARGS, rowBytes, 1, pf); PDL_ENTRY(); mmvq_impl<T, 1>(MATS_ARGS, rowBytes, cols, aq, ad, as, ai, ak, tokens, blockIdx.y); }
MMVQ(Q4_0, mmvq_q4_0) MMVQ(Q4_1, mmvq_q4_1) MMVQ(Q5_0, mmvq_q5_0) MMVQ(Q5_1, mmvq_q5_1) MMVQ(Q8_0, mmvq_q8_0)
MMVQ(Q5_K, mmvq_q5_K) MMVQ(Q6_K, mmvq_q6_K)

// q4_K, the most common type of real models, with wide loads: a lane takes a pair of sub-blocks
// (64 elements sharing 32 bytes of nibbles, 16-byte aligned in the 144-byte blocks) and reads
// them and the pair's 64 activation bytes with 128-bit loads. Rows must be 16-byte aligned
// (144 · k bytes per row; buffers from cuMemAlloc).
DEV void mmvq_q4K_impl(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq, const int* __restrict__ ai, const float* __restrict__ ak,
                       int tokens, int ty);
extern "C" __global__ void __launch_bounds__(128) mmvq_q4_K(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq, const float* ad,
                                                            const float* as, const int* __restrict__ ai, const float* __restrict__ ak, int tokens, int pf) {
    prefetch_warp_rows(MATS_ARGS, rowBytes, 1, pf); PDL_ENTRY();
    mmvq_q4K_impl(MATS_ARGS, rowBytes, cols, aq, ai, ak, tokens, blockIdx.y);
}
DEV void mmvq_q4K_impl(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq, const int* __restrict__ ai, const float* __restrict__ ak,
                       int tokens, int ty) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    Sel sel;
    if (!select3(blockIdx.x * 4 + warp, MATS_ARGS, sel)) return;
    int r = sel.r, ldy = sel.ldy;
    float* y = sel.y;
    int t0 = ty * 8, nt = min(8, tokens - t0);
    const u8* row = sel.W + (u64)r * rowBytes;
    int pairs = cols / 64, chunks = cols / 32, supers = cols / 256;
    float acc[8];
#pragma unroll
    for (int t = 0; t < 8; t++) acc[t] = 0.f;
    for (int pi = lane; pi < pairs; pi += 32) {
        int s = pi >> 2, pr = pi & 3;
        const u8* k = row + s * 144;
        uint4 h = *(const uint4*)k;
        float d = h2f((u16)(h.x & 0xffffu)), dmin = h2f((u16)(h.x >> 16));
        int sa, ma, sb, mb;
        scale_min_pair(h, pr, sa, ma, sb, mb);
        const uint4* qp = (const uint4*)(k + 16 + 32 * pr);
        uint4 q0 = qp[0], q1 = qp[1];
        u32 qw[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
        float da = d * (float)sa, db = d * (float)sb, mna = dmin * (float)ma, mnb = dmin * (float)mb;
#pragma unroll
        for (int t = 0; t < 8; t++) {
            if (t < nt) {
                u64 tc = (u64)(t0 + t) * chunks + 2 * pi;
                const int4* a4 = (const int4*)(aq + tc * 32);
                int4 a0 = a4[0], a1 = a4[1], a2 = a4[2], a3 = a4[3];
                int av[16] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w, a2.x, a2.y, a2.z, a2.w, a3.x, a3.y, a3.z, a3.w};
                int s1 = 0, s2 = 0;
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    s1 = __dp4a((int)(qw[j] & 0x0F0F0F0Fu), av[j], s1);
                    s2 = __dp4a((int)((qw[j] >> 4) & 0x0F0F0F0Fu), av[8 + j], s2);
                }
                float dK = ak[(u64)(t0 + t) * supers + s];
                acc[t] += dK * ((da * (float)s1 - mna * (float)ai[tc]) + (db * (float)s2 - mnb * (float)ai[tc + 1]));
            }
        }
    }
#pragma unroll
    for (int t = 0; t < 8; t++) {
        if (t < nt) {
            float v = warp_sum(acc[t]);
            if (lane == 0) y[(u64)(t0 + t) * ldy + r] = v;
        }
    }
}

// One sub-block pair (pi) of two q4_K rows: the weights' loads (the superblock header and the
// pair's 32 nibble bytes per row), then the pair's products with the activations, added to acc.
DEV void q4K_pair_load(const u8* const rows[2], int pi, uint4 h[2], uint4 qa[2], uint4 qb[2]) {
    int s = pi >> 2, pr = pi & 3;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const u8* k = rows[r] + s * 144;
        h[r] = *(const uint4*)k;
        const uint4* qp = (const uint4*)(k + 16 + 32 * pr);
        qa[r] = qp[0]; qb[r] = qp[1];
    }
}
DEV void q4K_pair_dot(const uint4 h[2], const uint4 qa[2], const uint4 qb[2], int pi, const int4 a4[4], int2 mi, float dK,
                      float acc[2]) {
    int pr = pi & 3;
    int av[16] = {a4[0].x, a4[0].y, a4[0].z, a4[0].w, a4[1].x, a4[1].y, a4[1].z, a4[1].w,
                  a4[2].x, a4[2].y, a4[2].z, a4[2].w, a4[3].x, a4[3].y, a4[3].z, a4[3].w};
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int sa, ma, sb, mb; scale_min_pair(h[r], pr, sa, ma, sb, mb);
        float d = h2f((u16)(h[r].x & 0xffffu)), dmin = h2f((u16)(h[r].x >> 16));
        u32 qw[8] = {qa[r].x, qa[r].y, qa[r].z, qa[r].w, qb[r].x, qb[r].y, qb[r].z, qb[r].w};
        int x1 = 0, x2 = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            x1 = __dp4a((int)(qw[j] & 0x0F0F0F0Fu), av[j], x1);
            x2 = __dp4a((int)((qw[j] >> 4) & 0x0F0F0F0Fu), av[8 + j], x2);
        }
        acc[r] += dK * ((d * (float)sa * (float)x1 - dmin * (float)ma * (float)mi.x) + (d * (float)sb * (float)x2 - dmin * (float)mb * (float)mi.y));
    }
}

// Pair pi's activations (64 q8_K bytes, their two 32-sums, the superblock's scale), loaded.
struct Q4KPairActs { int4 a4[4]; int2 mi; float dK; };
DEV Q4KPairActs q4K_pair_acts(int pi, const i8* __restrict__ aq, const int* __restrict__ ai, const float* __restrict__ ak) {
    const int4* ap = (const int4*)(aq + (u64)pi * 64);
    return Q4KPairActs{{ap[0], ap[1], ap[2], ap[3]}, *(const int2*)(ai + 2 * pi), ak[pi >> 2]};
}

// Pair pi of two rows whole: its activations, then its weights, loaded; then its products.
DEV void q4K_pair_step(const u8* const rows[2], int pi, const i8* __restrict__ aq, const int* __restrict__ ai,
                       const float* __restrict__ ak, float acc[2]) {
    Q4KPairActs a = q4K_pair_acts(pi, aq, ai, ak);
    uint4 h[2], qa[2], qb[2];
    q4K_pair_load(rows, pi, h, qa, qb);
    q4K_pair_dot(h, qa, qb, pi, a.a4, a.mi, a.dK, acc);
}

// A one-token q4_K GEMV warp's two rows (rows g, g + 1 of the three matrices): the lane's first
// PRE pairs of weights loaded into registers before the kernel waits for the one before it
// (programmatic dependent launch; PRE = 0: only the L2 prefetch hint when pf), then the rest.
// The weights depend on nothing, so while the small kernel before (a norm, the attention, glu)
// runs, DRAM already streams this GEMV's first wave — for the 4 096-wide matrices of an 8B model
// (two pairs per lane and row) all of it with PRE = 2. Every PRE gives the same sums (q4K_pair_dot)
// in the same order, so the kernels below agree bit for bit. Returns false (after the wait) for
// a warp past the last row; `two` is false when row g + 1 is past it (s1 = s0 then). With PRE > 0
// the L2 prefetch hint (pf) is not issued. Loading before the wait assumes that the kernel before
// never writes weights (true of every decode kernel; expert streaming copies on its own stream
// and joins with an event before its prefill kernels).
// The warp takes rows g and g + 1. `pre(s0, have)` runs after the preload is issued and `wait()`
// after it (mmv1r: the rope's angle in between).
template <int PRE, typename Pre, typename Wait> DEV bool mmv1_rows(int g, MATS, u64 rowBytes, int cols, const i8* __restrict__ aq,
                                                                   const int* __restrict__ ai, const float* __restrict__ ak, int pf, Sel& s0,
                                                                   Sel& s1, bool& two, float& v0, float& v1, Pre pre, Wait wait) {
    int lane = threadIdx.x & 31, pairs = cols / 64;
    s0 = Sel{}; s1 = Sel{};
    bool have = select3(g, MATS_ARGS, s0);
    two = have && select3(g + 1, MATS_ARGS, s1);
    if (!two) s1 = s0;
    const u8* rows[2] = {s0.W + (u64)s0.r * rowBytes, s1.W + (u64)s1.r * rowBytes};
    uint4 h[PRE > 0 ? PRE : 1][2], qa[PRE > 0 ? PRE : 1][2], qb[PRE > 0 ? PRE : 1][2];
    if constexpr (PRE == 0) prefetch_warp_rows(MATS_ARGS, rowBytes, 2, pf);
#pragma unroll
    for (int i = 0; i < PRE; i++)
        if (have && lane + 32 * i < pairs) q4K_pair_load(rows, lane + 32 * i, h[i], qa[i], qb[i]);
    pre(s0, have);
    wait();
    if (!have) return false;
    float acc[2] = {0.f, 0.f};
#pragma unroll
    for (int i = 0; i < PRE; i++) {
        int pi = lane + 32 * i;
        if (pi < pairs) {
            Q4KPairActs a = q4K_pair_acts(pi, aq, ai, ak);
            q4K_pair_dot(h[i], qa[i], qb[i], pi, a.a4, a.mi, a.dK, acc);
        }
    }
    for (int pi = lane + 32 * PRE; pi < pairs; pi += 32) q4K_pair_step(rows, pi, aq, ai, ak, acc);
    v0 = warp_sum(acc[0]); v1 = warp_sum(acc[1]);
    return true;
}

// q4_K, one token (the decode step): a warp takes two rows, so each lane's activation loads
// (64 bytes per sub-block pair) serve both; all of a lane's loads for a pair issue before its
// arithmetic. grid ceil(rows / 8), 128 threads. 2.5–3.1 TB/s on an H100 for the matrices of
// an 8B model (scripts/gpu/lab: 1.5–1.8× mmvq_q4_K at one token). mmv1p1_q4_K / mmv1p2_q4_K
// preload 1 / 2 pairs (`SWIFTKT_CUDA_PRELOAD=1|2`, GPU.preloadPairs).
#define MMV1(NAME, PRE) extern "C" __global__ void __launch_bounds__(128) NAME(MATS, u64 rowBytes, int cols, \
        const i8* __restrict__ aq, const int* __restrict__ ai, const float* __restrict__ ak, int pf) { \
    TL_BEGIN(); \
    Sel s0, s1; bool two; float v0, v1; \
    if (mmv1_rows<PRE>((blockIdx.x * 4 + (threadIdx.x >> 5)) * 2, MATS_ARGS, rowBytes, cols, aq, ai, ak, pf, s0, s1, two, v0, v1, \
                       [](const Sel&, bool) {}, PDL_WAIT_HERE) && (threadIdx.x & 31) == 0) { \
        s0.y[s0.r] = v0; if (two) s1.y[s1.r] = v1; } }
MMV1(mmv1_q4_K, 0) MMV1(mmv1p1_q4_K, 1) MMV1(mmv1p2_q4_K, 2)

// Rope's angle for pair i at position p: its cosine and sine (theta_i = p / scale · thetaScale^i
// by repeated products, as the CPU; divided by the frequency factor when given). It depends on
// the position only, so kernels compute it before they wait for the kernel before.
DEV void rope_angle(int p, int i, float thetaScale, float scale, const float* freq, float& c, float& s) {
    float theta = (float)p / scale;
    for (int k = 0; k < i; k++) theta *= thetaScale;
    float angle = freq ? theta / freq[i] : theta;
    c = cosf(angle); s = sinf(angle);
}

// mmv1_q4_K for q, k and v of a decode step with rope and the KV-cache store in its epilogue
// (normal rope: the pair (2i, 2i + 1) is the warp's two rows): rows of W0 are queries, rotated
// into y0; rows of W1 keys, rotated into y1 and stored as f16 at row pos[0] of K; rows of W2
// values, into y2 and V. The GEMV's sums are mmv1_q4_K's and the rotation is rope_pair's
// expressions, so the results equal mmv1_q4_K + rope_store bit for bit. n0, n1 even (heads ·
// headDim). grid ceil(rows / 8), 128 threads. mmv1rp<PRE>_q4_K preload as mmv1p<PRE>_q4_K.
template <int PRE> DEV void mmv1r_impl(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq, const int* __restrict__ ai,
                                       const float* __restrict__ ak, int pf, const int* pos, u16* K, u16* V, int headDim, int rotDim,
                                       float thetaScale, float scale, const float* freq) {
    TL_BEGIN();
    Sel s0, s1; bool two; float v0, v1;
    // The pair's angle (rope_pair's rope_angle, pair i = d / 2 of the normal rotation) before the
    // wait: it depends on the position only, which the step's kernels never write.
    // The position too, for the epilogue's cache store (lane 0 does both).
    float c = 0.f, sn = 0.f;
    int p = 0;
    auto angle = [&](const Sel& s, bool have) {
        if (!have || (threadIdx.x & 31) != 0) return;
        p = pos[0];
        const bool v = s.W == W2 && n2 > 0 && s.y == y2;
        const int dd = s.r % headDim;
        if (!v && dd < rotDim) rope_angle(p, dd / 2, thetaScale, scale, freq, c, sn);
    };
    if (!mmv1_rows<PRE>((blockIdx.x * 4 + (threadIdx.x >> 5)) * 2, MATS_ARGS, rowBytes, cols, aq, ai, ak, pf, s0, s1, two, v0, v1, angle,
                        PDL_WAIT_HERE) || (threadIdx.x & 31) != 0) return;
    // The two rows belong to one matrix (n0, n1 even) and one head (headDim even).
    const int r = s0.r, d = r % headDim, width = n1;
    const bool isV = s0.W == W2 && n2 > 0 && s0.y == y2, isK = !isV && s0.W == W1 && s0.y == y1;
    if (!isV && d < rotDim) {
        // rope_pair's rotation.
        float x0 = v0, x1 = v1;
        v0 = fmaf(x0, c, -(x1 * sn));
        v1 = fmaf(x0, sn, x1 * c);
    }
    s0.y[r] = v0; if (two) s1.y[r + 1] = v1;
    if (isK || isV) {
        u16* dst = (isK ? K : V) + (u64)p * width + r;
        dst[0] = f2h(v0); if (two) dst[1] = f2h(v1);
    }
}
#define MMV1R(NAME, PRE) extern "C" __global__ void __launch_bounds__(128) NAME(MATS, u64 rowBytes, int cols, \
        const i8* __restrict__ aq, const int* __restrict__ ai, const float* __restrict__ ak, int pf, const int* pos, u16* K, \
        u16* V, int headDim, int rotDim, float thetaScale, float scale, const float* freq) { \
    mmv1r_impl<PRE>(MATS_ARGS, rowBytes, cols, aq, ai, ak, pf, pos, K, V, headDim, rotDim, thetaScale, scale, freq); }
MMV1R(mmv1r_q4_K, 0) MMV1R(mmv1rp1_q4_K, 1) MMV1R(mmv1rp2_q4_K, 2)

// Float weights (f32 / f16 / bf16) against float activations, same grid.
template <int T> __device__ void mmv_float_impl(const u8* W, u64 rowBytes, int rows, int cols, const float* x, float* y, int tokens, int ldy) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int r = blockIdx.x * 4 + warp;
    if (r >= rows) return;
    int t0 = blockIdx.y * 8, nt = min(8, tokens - t0);
    const u8* row = W + (u64)r * rowBytes;
    float acc[8];
#pragma unroll
    for (int t = 0; t < 8; t++) acc[t] = 0.f;
    for (int i = lane; i < cols; i += 32) {
        float wv = dq<T>(row, i);
#pragma unroll
        for (int t = 0; t < 8; t++) if (t < nt) acc[t] += wv * x[(u64)(t0 + t) * cols + i];
    }
#pragma unroll
    for (int t = 0; t < 8; t++) {
        if (t < nt) { float v = warp_sum(acc[t]); if (lane == 0) y[(u64)(t0 + t) * ldy + r] = v; }
    }
}
#define MMVF(T, name) extern "C" __global__ void __launch_bounds__(128) name(const u8* W, u64 rowBytes, int rows, int cols, const float* x, float* y, int tokens, int ldy) { PDL_ENTRY(); mmv_float_impl<T>(W, rowBytes, rows, cols, x, y, tokens, ldy); }
MMVF(F32, mmv_f32) MMVF(F16, mmv_f16) MMVF(BF16, mmv_bf16)

// ---------------------------------------------------------------------------------------------
// Norms, rope, activations, elementwise.

// out[r] = (x[r] · 1/sqrt(mean(x[r]²) + eps)) · w, one block per row; sums in double as ggml's.
extern "C" __global__ void rms_norm(const float* x, const float* w, float* out, int n, float eps) { PDL_ENTRY();
    __shared__ double part[32];
    const float* xr = x + (u64)blockIdx.x * n;
    float* o = out + (u64)blockIdx.x * n;
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += (double)(xr[i] * xr[i]);
    for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(0xffffffffu, s, k);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        double v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0;
        for (int k = 16; k > 0; k >>= 1) v += __shfl_xor_sync(0xffffffffu, v, k);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    float scale = 1.f / sqrtf((float)(part[0] / n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = (xr[i] * scale) * w[i];
}

// x[r] += y[r], then out[r] = rms_norm(x[r]) · w: the residual add and the next norm in one pass.
extern "C" __global__ void add_rms_norm(float* x, const float* y, const float* w, float* out, int n, float eps) { PDL_ENTRY();
    __shared__ double part[32];
    float* xr = x + (u64)blockIdx.x * n;
    const float* yr = y + (u64)blockIdx.x * n;
    float* o = out + (u64)blockIdx.x * n;
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) { float v = xr[i] + yr[i]; xr[i] = v; s += (double)(v * v); }
    for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(0xffffffffu, s, k);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        double v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0;
        for (int k = 16; k > 0; k >>= 1) v += __shfl_xor_sync(0xffffffffu, v, k);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    float scale = 1.f / sqrtf((float)(part[0] / n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = (xr[i] * scale) * w[i];
}

// The same two norms for rows of 4·k floats (16-byte aligned): a thread holds V float4 of the
// row (block = ceil(n/4 / V) threads), and issues all its loads (x, y, w) before any
// arithmetic — the loops above wait one memory round trip per element because x, y and out
// may alias. Sums in double, as above.
DEV double block_dsum(double s, double* part) {
    for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(0xffffffffu, s, k);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        double v = threadIdx.x < ((blockDim.x + 31) >> 5) ? part[threadIdx.x] : 0;
        for (int k = 16; k > 0; k >>= 1) v += __shfl_xor_sync(0xffffffffu, v, k);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    return part[0];
}
// `res` (optional) receives the thread's V outputs (zeros past the row), for a fused consumer.
// `wait()` is called before any load of what the kernel before may write; the weights w (which
// no kernel writes) load before it, and x too when `early` (the caller knows that x was last
// written at least two kernels before: then it is complete when this kernel's blocks start).
template <int V, bool ADD, typename Wait> DEV void norm4_impl(float* x, const float* y, const float* w, float* out, int n, float eps,
                                                              float4* res, bool early, Wait wait) {
    __shared__ double part[32];
    int n4 = n >> 2;
    float4* xr = (float4*)(x + (u64)blockIdx.x * n);
    const float4* yr = (const float4*)(y + (u64)blockIdx.x * n);
    const float4* wr = (const float4*)w;
    float4* o = (float4*)(out + (u64)blockIdx.x * n);
    float4 v[V], b[V], g[V];
#pragma unroll
    for (int k = 0; k < V; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < n4) { g[k] = wr[i]; if (early) v[k] = __ldcg(&xr[i]); }  // (x from L2, not a stale L1 line)
    }
    wait();
#pragma unroll
    for (int k = 0; k < V; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < n4) { if (!early) v[k] = xr[i]; if (ADD) b[k] = yr[i]; }
    }
    double s = 0;
#pragma unroll
    for (int k = 0; k < V; k++) {
        int i = threadIdx.x + k * blockDim.x;
        if (i < n4) {
            if (ADD) { v[k].x += b[k].x; v[k].y += b[k].y; v[k].z += b[k].z; v[k].w += b[k].w; xr[i] = v[k]; }
            s += (double)(v[k].x * v[k].x) + (double)(v[k].y * v[k].y) + (double)(v[k].z * v[k].z) + (double)(v[k].w * v[k].w);
        }
    }
    float scale = 1.f / sqrtf((float)(block_dsum(s, part) / n) + eps);
#pragma unroll
    for (int k = 0; k < V; k++) {
        int i = threadIdx.x + k * blockDim.x;
        float4 r = make_float4(0.f, 0.f, 0.f, 0.f);
        if (i < n4) {
            r = make_float4((v[k].x * scale) * g[k].x, (v[k].y * scale) * g[k].y, (v[k].z * scale) * g[k].z, (v[k].w * scale) * g[k].w);
            o[i] = r;
        }
        if (res) res[k] = r;
    }
}
#define NORM4(V) \
    extern "C" __global__ void __launch_bounds__(1024) rms_norm4_##V(float* x, const float* w, float* out, int n, float eps) { TL_BEGIN(); norm4_impl<V, false>(x, x, w, out, n, eps, nullptr, false, PDL_WAIT_HERE); } \
    extern "C" __global__ void __launch_bounds__(1024) add_rms_norm4_##V(float* x, const float* y, const float* w, float* out, int n, float eps) { TL_BEGIN(); norm4_impl<V, true>(x, y, w, out, n, eps, nullptr, false, PDL_WAIT_HERE); }
NORM4(1) NORM4(2) NORM4(4) NORM4(8)

// The V = 1 norms with the next matmul's activation quantization fused in (the decode step's
// norms feed q/k/v and gate/up): each thread quantizes the four outputs it holds, exactly as
// quantize_q8_32 / quantize_q8_K would from `out`. FMT 0: q8_0/q8_1 per 32 (8 threads);
// FMT 1: q8_K per 256 (64 threads = 2 warps; the largest magnitude, first index on ties,
// through shared memory). Needs n / 4 ≤ 1024 threads and n a multiple of 32 (256 for q8_K).
template <bool ADD, int FMT, typename Wait> DEV void norm4q_impl(float* x, const float* y, const float* w, float* out, int n, float eps,
                                                  i8* q, float* ad, float* as, int* ai, float* ak, bool early, Wait wait) {
    __shared__ float cabs[32], cval[32]; __shared__ int cidx[32];
    int n4 = n >> 2, i = threadIdx.x, lane = i & 31, warp = i >> 5;
    bool on = i < n4;
    u64 rowBase = (u64)blockIdx.x * n;
    float4 o;
    norm4_impl<1, ADD>(x, y, w, out, n, eps, &o, early, wait);
    float e[4] = {o.x, o.y, o.z, o.w};
    int qi[4];
    if (FMT == 0) {
        float amax = fmaxf(fmaxf(fabsf(e[0]), fabsf(e[1])), fmaxf(fabsf(e[2]), fabsf(e[3])));
        for (int k = 1; k < 8; k <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, k));
        float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
        int sum = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) { qi[k] = __float2int_rn(e[k] * id); sum += qi[k]; }
        for (int k = 1; k < 8; k <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, k);
        u64 blk = (rowBase >> 5) + (i >> 3);
        if (on && (i & 7) == 0) { ad[blk] = h2f(f2h(d)); as[blk] = h2f(f2h(d * (float)sum)); ai[blk] = sum; }
    } else {
        // Largest magnitude of the thread's four (first on ties), then of the warp, then of the pair of warps.
        float a = fabsf(e[0]), val = e[0]; int idx = 4 * i;
#pragma unroll
        for (int k = 1; k < 4; k++) if (fabsf(e[k]) > a) { a = fabsf(e[k]); val = e[k]; idx = 4 * i + k; }
        warp_max_first(a, val, idx);
        if (lane == 0) { cabs[warp] = a; cval[warp] = val; cidx[warp] = idx; }
        __syncthreads();
        int w0 = warp & ~1, w1 = w0 + 1;
        bool first = cabs[w0] > cabs[w1] || (cabs[w0] == cabs[w1] && cidx[w0] < cidx[w1]);
        float best = first ? cabs[w0] : cabs[w1], mx = best == 0.f ? 0.f : (first ? cval[w0] : cval[w1]);
        int sum = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            qi[k] = 0;
            if (mx != 0.f) { float iscale = -127.f / mx; qi[k] = min(127, __float2int_rn(iscale * e[k])); }
            sum += qi[k];
        }
        for (int k = 1; k < 8; k <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, k);
        if (on && (i & 7) == 0) ai[(rowBase >> 5) + (i >> 3)] = sum;
        if (on && (i & 63) == 0) ak[(rowBase >> 8) + (i >> 6)] = mx != 0.f ? 1.f / (-127.f / mx) : 0.f;
    }
    if (on) {
        u32 packed = (u32)(u8)qi[0] | ((u32)(u8)qi[1] << 8) | ((u32)(u8)qi[2] << 16) | ((u32)(u8)qi[3] << 24);
        ((u32*)(q + rowBase))[i] = packed;
    }
}
// early: x may be read before the wait (GPUOps.addRMSNorm's xReady).
#define NORM4Q(FMT, sfx) \
    extern "C" __global__ void __launch_bounds__(1024) rms_norm4q_##sfx(float* x, const float* w, float* out, int n, float eps, i8* q, float* ad, float* as, int* ai, float* ak, int early) { TL_BEGIN(); norm4q_impl<false, FMT>(x, x, w, out, n, eps, q, ad, as, ai, ak, early, PDL_WAIT_HERE); } \
    extern "C" __global__ void __launch_bounds__(1024) add_rms_norm4q_##sfx(float* x, const float* y, const float* w, float* out, int n, float eps, i8* q, float* ad, float* as, int* ai, float* ak, int early) { TL_BEGIN(); norm4q_impl<true, FMT>(x, y, w, out, n, eps, q, ad, as, ai, ak, early, PDL_WAIT_HERE); }
NORM4Q(0, 32) NORM4Q(1, K)

// Rotary embedding in place on x [T, heads, headDim] and, in the same launch, on x2 [T, heads2,
// headDim] (queries and keys); grid (T, heads + heads2), block rotDim / 2.
// theta_i = pos / scale · base^(-2i / rotDim) (by repeated products, as the CPU), divided by
// freq[i] when given; normal rope rotates pairs (2i, 2i+1), neox (i, i + rotDim / 2).
// The rotation of pair i's two values by rope_angle's cosine and sine.
DEV void rope_rotate(const float* v, int i, int half, int neox, float c, float s, float& ra, float& rb, int& a, int& b) {
    a = neox ? i : 2 * i; b = neox ? i + half : 2 * i + 1;
    float x0 = v[a], x1 = v[b];
    ra = fmaf(x0, c, -(x1 * s));
    rb = fmaf(x0, s, x1 * c);
}
DEV void rope_pair(float* v, int p, int i, int half, float thetaScale, float scale, const float* freq, int neox, float& ra, float& rb, int& a, int& b) {
    float c, s;
    rope_angle(p, i, thetaScale, scale, freq, c, s);
    rope_rotate(v, i, half, neox, c, s, ra, rb, a, b);
}
extern "C" __global__ void rope(float* x, float* x2, const int* pos, int heads, int heads2, int headDim, int rotDim,
                                float thetaScale, float scale, const float* freq, int neox) { PDL_ENTRY();
    int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, half = rotDim / 2;
    if (i >= half) return;
    float* v = h < heads ? x + ((u64)t * heads + h) * headDim : x2 + ((u64)t * heads2 + (h - heads)) * headDim;
    float ra, rb; int a, b;
    rope_pair(v, pos[t], i, half, thetaScale, scale, freq, neox, ra, rb, a, b);
    v[a] = ra; v[b] = rb;
}

// rope on queries and keys, and the keys and values stored to the f16 cache at their positions
// (rope then store_kv in one launch): q [T, heads, headDim], k, v [T, kvHeads, headDim] into
// K, V [capacity, kvHeads · headDim]; grid (T, heads + 2 · kvHeads), block ≥ rotDim / 2.
extern "C" __global__ void rope_store(float* q, float* k, const float* v, u16* K, u16* V, const int* pos, int heads, int kvHeads,
                                      int headDim, int rotDim, float thetaScale, float scale, const float* freq, int neox) {
    TL_BEGIN();
    int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, half = rotDim / 2, width = kvHeads * headDim;
    // The positions come before the step's kernels (a copy or chain_token), the frequencies with
    // the weights: the angle is ready before the wait.
    float c = 0.f, sn = 0.f;
    if (i < half && h < heads + kvHeads) rope_angle(pos[t], i, thetaScale, scale, freq, c, sn);
    PDL_WAIT(); TL_RELEASED();
    u64 row = (u64)pos[t] * width;
    if (h >= heads + kvHeads) {
        int vh = h - heads - kvHeads;
        const float* src = v + (u64)t * width + vh * headDim;
        for (int j = i; j < headDim; j += blockDim.x) V[row + vh * headDim + j] = f2h(src[j]);
        return;
    }
    bool key = h >= heads;
    float* x = key ? k + (u64)t * width + (h - heads) * headDim : q + ((u64)t * heads + h) * headDim;
    u16* dst = key ? K + row + (h - heads) * headDim : nullptr;
    if (i < half) {
        float ra, rb; int a, b;
        rope_rotate(x, i, half, neox, c, sn, ra, rb, a, b);
        x[a] = ra; x[b] = rb;
        if (key) { dst[a] = f2h(ra); dst[b] = f2h(rb); }
    }
    if (key) for (int j = rotDim + i; j < headDim; j += blockDim.x) dst[j] = f2h(x[j]);
}

DEV float gelu_tanh(float g) { return 0.5f * g * (1.f + tanhf(0.7978845608028654f * g * (1.f + 0.044715f * g * g))); }

// gate[i] = act(gate[i]) · up[i]; act 0: SiLU, 1: GELU (tanh), 2: GELU as llama.cpp's CPU table
// (input and result rounded to f16; 0 at or below -10, the identity at or above 10).
DEV float glu_act(float g, int act) {
    if (act == 0) return g / (1.f + expf(-g));
    if (act == 1) return gelu_tanh(g);
    return g <= -10.f ? 0.f : (g >= 10.f ? g : h2f(f2h(gelu_tanh(h2f(f2h(g))))));
}

extern "C" __global__ void glu(float* gate, const float* up, u64 count, int act) { PDL_ENTRY();
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    gate[i] = glu_act(gate[i], act) * up[i];
}

// glu with the down projection's activation quantization fused in (blocks of 256 threads):
// fmt 0 q8_0 / q8_1 per warp (count a multiple of 32), fmt 1 q8_K per block (of 256).
extern "C" __global__ void __launch_bounds__(256) glu_q(float* gate, const float* up, u64 count, int act, int fmt,
                                                        i8* q, float* ad, float* as, int* ai, float* ak) { PDL_ENTRY();
    u64 i = (u64)blockIdx.x * 256 + threadIdx.x;
    if (fmt == 0 && i >= count) return;  // whole warps (count % 32 == 0)
    if (fmt == 1 && (count & 255)) return;  // q8_K needs whole superblocks (GPUOps checks)
    float a = glu_act(gate[i], act) * up[i];
    gate[i] = a;
    if (fmt == 0) q8_32_warp(a, i >> 5, threadIdx.x & 31, q, ad, as, ai);
    else q8_K_block(a, blockIdx.x, q, ak, ai);
}

// x[i] += y[i]
extern "C" __global__ void add(float* x, const float* y, u64 count) { PDL_ENTRY();
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] += y[i];
}

// x[t, i] += y[t, i] · sigmoid(g[t]) for rows of n (qwen2moe's gated shared expert; the CPU's
// MoEFeedForward.addShared: 1 / (1 + exp(−g)))
extern "C" __global__ void add_gated(float* x, const float* y, const float* g, int n, u64 count) { PDL_ENTRY();
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] = __fadd_rn(x[i], __fmul_rn(y[i], 1.0f / (1.0f + expf(-g[i / n]))));
}

// y[t, i] += b[i] for rows of n
extern "C" __global__ void add_bias(float* y, const float* b, int n, u64 count) { PDL_ENTRY();
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) y[i] += b[i % n];
}

// x[i] = cap · tanh(x[i] / cap)
extern "C" __global__ void softcap(float* x, float cap, u64 count) { PDL_ENTRY();
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] = cap * tanhf(x[i] / cap);
}

// Rows of keys and values to the f16 cache at their positions: k, v [T, width] into
// K, V [capacity, width]; grid (blocks over width, T, 2).
extern "C" __global__ void store_kv(const float* k, const float* v, u16* K, u16* V, const int* pos, int width, int tokens) { PDL_ENTRY();
    int t = blockIdx.y;
    const float* src = blockIdx.z == 0 ? k : v;
    u16* dst = blockIdx.z == 0 ? K : V;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < width; i += gridDim.x * blockDim.x)
        dst[(u64)pos[t] * width + i] = f2h(src[(u64)t * width + i]);
}

// The block's (largest value, its first index) over entries i of v (indices idx[i], or i when
// idx is null) for i in [lo, hi); thread 0 gets the result. NaNs never win; an all −inf / NaN
// range gives index 0x7fffffff.
DEV void block_argmax(const float* v, const int* idx, int lo, int hi, float& best, int& bi) {
    __shared__ float sv[32]; __shared__ int si[32];
    best = NEG_INF; bi = 0x7fffffff;
    for (int i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float x = v[i]; int j = idx ? idx[i] : i;
        if (x > best) { best = x; bi = j; }  // a thread's indices increase: the first wins ties
    }
    for (int o = 16; o > 0; o >>= 1) {
        float v2 = __shfl_xor_sync(0xffffffffu, best, o); int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
        if (v2 > best || (v2 == best && i2 < bi)) { best = v2; bi = i2; }
    }
    if ((threadIdx.x & 31) == 0) { sv[threadIdx.x >> 5] = best; si[threadIdx.x >> 5] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
        best = sv[0]; bi = si[0];
        for (int k = 1; k < (int)(blockDim.x >> 5); k++) if (sv[k] > best || (sv[k] == best && si[k] < bi)) { best = sv[k]; bi = si[k]; }
    }
}
// Index of the largest value of each row (the first on ties); one block per row.
extern "C" __global__ void argmax_rows(const float* x, int n, int* out) { PDL_ENTRY();
    float best; int bi;
    block_argmax(x + (u64)blockIdx.x * n, nullptr, 0, n, best, bi);
    if (threadIdx.x == 0) out[blockIdx.x] = bi;
}
// The same in two passes for long rows: block s of row r takes entries [s·len, (s+1)·len) and
// writes its pick to part[r·S + s] (value) and part[rows·S + r·S + s] (index, as a float's
// bits); then one block per row picks among its S (the lowest index on ties, as one pass).
extern "C" __global__ void argmax_slices(const float* x, int n, int len, float* part) { PDL_ENTRY();
    int S = gridDim.x, r = blockIdx.y;
    float best; int bi;
    block_argmax(x + (u64)r * n, nullptr, blockIdx.x * len, min(n, (blockIdx.x + 1) * len), best, bi);
    if (threadIdx.x == 0) { part[r * S + blockIdx.x] = best; ((int*)part)[gridDim.y * S + r * S + blockIdx.x] = bi; }
}
extern "C" __global__ void argmax_finish(const float* part, int S, int rows, int* out) { PDL_ENTRY();
    float best; int bi;
    int r = blockIdx.x;
    block_argmax(part + r * S, (const int*)part + rows * S + r * S, 0, S, best, bi);
    if (threadIdx.x == 0) out[r] = bi;
}

// ---------------------------------------------------------------------------------------------
// Attention over the f16 cache, split-K. q [T, H, D] float; K, V [capacity, KVH · D] f16;
// key k is visible to the query at position p when k ≤ p and, with a window w > 0, k > p − w.
// grid (H, T, S), block 128: split s takes the query's visible keys [lo + s·len, lo + (s+1)·len)
// with len = ⌈visible / S⌉ (cut from the query's position, not from the cache's bound: a decode
// graph is captured for a long cache, and a short context then still spreads over every split);
// warp w of the block takes its keys begin + w + 4i four at a time, their K and V loads issued
// before any arithmetic, with an online softmax; the block merges its warps and writes
// part[(t · H + h) · S + s] = (max, sum, acc[D]); attn_combine merges the splits.

#define MAXJ 8  // headDim ≤ 256
// The block's four warps' (m, l, acc) merged into part[(t · H + h) · S + s] = (max, sum, acc[D]).
DEV void attn_split_store(float m, float l, const float* acc, int nj, int D, int h, int t, int s, int H, int S, float* part) {
    __shared__ float sm[4], sl[4];
    __shared__ float sacc[4][256];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) { sm[warp] = m; sl[warp] = l; }
#pragma unroll
    for (int j = 0; j < MAXJ; j++) if (j < nj) sacc[warp][lane + 32 * j] = acc[j];
    __syncthreads();
    float M = fmaxf(fmaxf(sm[0], sm[1]), fmaxf(sm[2], sm[3]));
    float* out = part + (((u64)t * H + h) * S + s) * (D + 2);
    if (M == NEG_INF) {
        for (int i = threadIdx.x; i < D; i += 128) out[2 + i] = 0.f;
        if (threadIdx.x == 0) { out[0] = NEG_INF; out[1] = 0.f; }
        return;
    }
    float f[4];
    for (int w = 0; w < 4; w++) f[w] = sm[w] == NEG_INF ? 0.f : expf(sm[w] - M);
    for (int i = threadIdx.x; i < D; i += 128)
        out[2 + i] = sacc[0][i] * f[0] + sacc[1][i] * f[1] + sacc[2][i] * f[2] + sacc[3][i] * f[3];
    if (threadIdx.x == 0) { out[0] = M; out[1] = sl[0] * f[0] + sl[1] * f[1] + sl[2] * f[2] + sl[3] * f[3]; }
}

// NJ = D / 32.
template <int NJ> DEV void attn_split_impl(const float* q, const u16* K, const u16* V, const int* pos, int H, int KVH, float scale,
                                               int window, float* part) {
    constexpr int D = NJ * 32;
    int h = blockIdx.x, t = blockIdx.y, s = blockIdx.z, S = gridDim.z;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int kvh = h / (H / KVH), W = KVH * D;
    int p = pos[t];
    int lo = window > 0 ? max(0, p - window + 1) : 0;
    int len = (p + 1 - lo + S - 1) / S;
    int begin = lo + s * len, end = min(p + 1, begin + len);
    float qv[NJ], acc[NJ];
    const float* qr = q + ((u64)t * H + h) * D;
#pragma unroll
    for (int j = 0; j < NJ; j++) { qv[j] = qr[lane + 32 * j]; acc[j] = 0.f; }
    float m = NEG_INF, l = 0.f;
    for (int k0 = begin + warp; k0 < end; k0 += 16) {
        u16 kh[4][NJ], vh[4][NJ];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int k = min(k0 + 4 * u, end - 1);
            const u16* kr = K + (u64)k * W + kvh * D;
            const u16* vr = V + (u64)k * W + kvh * D;
#pragma unroll
            for (int j = 0; j < NJ; j++) { kh[u][j] = kr[lane + 32 * j]; vh[u][j] = vr[lane + 32 * j]; }
        }
        float sc[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float part_ = 0.f;
#pragma unroll
            for (int j = 0; j < NJ; j++) part_ += qv[j] * h2f(kh[u][j]);
            sc[u] = k0 + 4 * u < end ? warp_sum(part_) * scale : NEG_INF;
        }
        float mn = fmaxf(fmaxf(m, fmaxf(sc[0], sc[1])), fmaxf(sc[2], sc[3]));  // finite: key k0 is visible
        float corr = expf(m - mn);
        l *= corr;
#pragma unroll
        for (int j = 0; j < NJ; j++) acc[j] *= corr;
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float pr = expf(sc[u] - mn);  // 0 for the group's keys past the end
            l += pr;
#pragma unroll
            for (int j = 0; j < NJ; j++) acc[j] = fmaf(pr, h2f(vh[u][j]), acc[j]);
        }
        m = mn;
    }
    float accs[MAXJ];
#pragma unroll
    for (int j = 0; j < MAXJ; j++) accs[j] = j < NJ ? acc[j] : 0.f;
    attn_split_store(m, l, accs, NJ, D, h, t, s, H, S, part);
}
#define ATTN_SPLIT(D) extern "C" __global__ void __launch_bounds__(128) attn_split_##D(const float* q, const u16* K, const u16* V, \
        const int* pos, int H, int KVH, float scale, int window, float* part) { PDL_ENTRY(); \
    attn_split_impl<D / 32>(q, K, V, pos, H, KVH, scale, window, part); }
ATTN_SPLIT(32) ATTN_SPLIT(64) ATTN_SPLIT(96) ATTN_SPLIT(128) ATTN_SPLIT(160) ATTN_SPLIT(192)
ATTN_SPLIT(224) ATTN_SPLIT(256)

// llama.cpp's CPU flash-attention numerics (its path for < 64 queries), for GPU results that
// follow the CPU's token for token: the query rounded to f16, scores in float, an online softmax
// over keys in order with the f16 accumulator acc <- f16(fma(v, w, acc)), rescaled by f16(acc * ms)
// when the maximum grows, and S <- fma(S, ms, w). Two kernels: the scores (parallel), then one
// thread per output element walking the keys in order. scores [T, H, maxKeys].
extern "C" __global__ void __launch_bounds__(256) attn_scores_f16q(const float* q, const u16* K, const int* pos, int H, int KVH, int D,
                                         float scale, int window, int maxKeys, float* scores) { PDL_ENTRY();
    // grid (H, T, Z), block 256: warp w of block z takes keys lo + z·8 + w + i·8Z, four at a time
    // with all their loads issued first.
    int h = blockIdx.x, t = blockIdx.y, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int kvh = h / (H / KVH), W = KVH * D, nj = D / 32;
    int p = pos[t], lo = window > 0 ? max(0, p - window + 1) : 0;
    const float* qr = q + ((u64)t * H + h) * D;
    float qv[MAXJ];
#pragma unroll
    for (int j = 0; j < MAXJ; j++) qv[j] = j < nj ? h2f(f2h(qr[lane + 32 * j])) : 0.f;
    float* out = scores + ((u64)t * H + h) * maxKeys;
    int stride = gridDim.z * 8;
    for (int k0 = lo + blockIdx.z * 8 + warp; k0 <= p; k0 += 4 * stride) {
        float kv[4][MAXJ];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int k = min(k0 + u * stride, p);
            const u16* kr = K + (u64)k * W + kvh * D;
#pragma unroll
            for (int j = 0; j < MAXJ; j++) kv[u][j] = j < nj ? h2f(kr[lane + 32 * j]) : 0.f;
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float part_ = 0.f;
#pragma unroll
            for (int j = 0; j < MAXJ; j++) if (j < nj) part_ += qv[j] * kv[u][j];
            float sc = warp_sum(part_);
            int k = k0 + u * stride;
            if (lane == 0 && k <= p) out[k - lo] = sc * scale;
        }
    }
}

// Prefill attention in tiles (flash-attention style, f32 arithmetic on f16 keys and values):
// a block of 128 threads takes BQ queries of one head and walks the keys up to the last query's
// position in tiles of BK, staged in shared memory and shared by all its queries, with an
// online softmax per query. Thread (ty, tx) = (tid / 16, tid % 16) holds rows ty + 8i and keys
// tx + 16j of each score tile, and output columns tx + 16c. Queries t ≥ T are idle rows.
// grid (ceil(T / BQ), H), block 128; D ∈ {64, 128, 256} (BQ, BK = 32, 64 / 32, 32 / 16, 16).
template <int D, int BQ, int BK> DEV void attn_tile_impl(const float* q, const u16* K, const u16* V, const int* pos, int T, int H,
                                                          int KVH, float scale, int window, float* out) {
    constexpr int RQ = BQ / 8, RK = BK / 16, RC = D / 16;
    __shared__ float qs[BQ][D + 1];
    __shared__ u32 ks[BK][D / 2 + 1];
    __shared__ u32 vs[BK][D / 2];
    __shared__ float ps[BQ][BK + 1];
    int h = blockIdx.y, t0 = blockIdx.x * BQ, tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    int kvh = h / (H / KVH), W = KVH * D;
    for (int i = tid; i < BQ * D; i += 128) {
        int r = i / D, d = i % D;
        qs[r][d] = t0 + r < T ? q[((u64)(t0 + r) * H + h) * D + d] * scale : 0.f;
    }
    int p[RQ], lo[RQ];
    int kBegin = 0x7fffffff, kEnd = -1;
    for (int r = 0; r < BQ; r++) {
        if (t0 + r >= T) break;
        int pr = pos[t0 + r], l = window > 0 ? max(0, pr - window + 1) : 0;
        kBegin = min(kBegin, l); kEnd = max(kEnd, pr);
    }
#pragma unroll
    for (int i = 0; i < RQ; i++) {
        int t = t0 + ty + 8 * i;
        p[i] = t < T ? pos[t] : -1;
        lo[i] = window > 0 ? max(0, p[i] - window + 1) : 0;
    }
    float m[RQ], l[RQ], acc[RQ][RC];
#pragma unroll
    for (int i = 0; i < RQ; i++) {
        m[i] = NEG_INF; l[i] = 0.f;
#pragma unroll
        for (int c = 0; c < RC; c++) acc[i][c] = 0.f;
    }
    for (int k0 = kBegin; k0 <= kEnd; k0 += BK) {
        __syncthreads();
        // Keys and values of the tile (pairs of halves), zeros past kEnd.
        for (int i = tid; i < BK * D / 2; i += 128) {
            int kr = i / (D / 2), d2 = i % (D / 2), k = k0 + kr;
            u32 kv = 0, vv = 0;
            if (k <= kEnd) {
                kv = ((const u32*)(K + (u64)k * W + kvh * D))[d2];
                vv = ((const u32*)(V + (u64)k * W + kvh * D))[d2];
            }
            ks[kr][d2] = kv; vs[kr][d2] = vv;
        }
        __syncthreads();
        float sc[RQ][RK];
#pragma unroll
        for (int i = 0; i < RQ; i++)
#pragma unroll
            for (int j = 0; j < RK; j++) sc[i][j] = 0.f;
#pragma unroll 4
        for (int d2 = 0; d2 < D / 2; d2++) {
            float2 kf[RK];
#pragma unroll
            for (int j = 0; j < RK; j++) { u32 w = ks[tx + 16 * j][d2]; kf[j] = make_float2(h2f((u16)(w & 0xffffu)), h2f((u16)(w >> 16))); }
#pragma unroll
            for (int i = 0; i < RQ; i++) {
                float a = qs[ty + 8 * i][2 * d2], b = qs[ty + 8 * i][2 * d2 + 1];
#pragma unroll
                for (int j = 0; j < RK; j++) sc[i][j] = fmaf(a, kf[j].x, fmaf(b, kf[j].y, sc[i][j]));
            }
        }
        // Online softmax per row: max and sum over the 16 threads of the row (one half-warp).
#pragma unroll
        for (int i = 0; i < RQ; i++) {
            float mx = NEG_INF;
#pragma unroll
            for (int j = 0; j < RK; j++) {
                int k = k0 + tx + 16 * j;
                if (k > p[i] || k < lo[i]) sc[i][j] = NEG_INF;
                mx = fmaxf(mx, sc[i][j]);
            }
            for (int o = 8; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            float mn = fmaxf(m[i], mx);
            float corr = mn == NEG_INF ? 1.f : expf(m[i] - mn), sum = 0.f;
#pragma unroll
            for (int j = 0; j < RK; j++) {
                float e = mn == NEG_INF ? 0.f : expf(sc[i][j] - mn);
                ps[ty + 8 * i][tx + 16 * j] = e;
                sum += e;
            }
            for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            l[i] = l[i] * corr + sum;
            m[i] = mn;
#pragma unroll
            for (int c = 0; c < RC; c++) acc[i][c] *= corr;
        }
        __syncthreads();
        // acc[i][c] += Σ_k P[row][k] · V[k][tx + 16c]
        for (int k = 0; k < BK; k++) {
            const u16* vr = (const u16*)vs[k];
            float vv[RC];
#pragma unroll
            for (int c = 0; c < RC; c++) vv[c] = h2f(vr[tx + 16 * c]);
#pragma unroll
            for (int i = 0; i < RQ; i++) {
                float pk = ps[ty + 8 * i][k];
#pragma unroll
                for (int c = 0; c < RC; c++) acc[i][c] = fmaf(pk, vv[c], acc[i][c]);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < RQ; i++) {
        int t = t0 + ty + 8 * i;
        if (t >= T) continue;
        float inv = l[i] > 0.f ? 1.f / l[i] : 0.f;
#pragma unroll
        for (int c = 0; c < RC; c++) out[((u64)t * H + h) * D + tx + 16 * c] = acc[i][c] * inv;
    }
}
#define ATTN_TILE(D, BQ, BK) extern "C" __global__ void __launch_bounds__(128) attn_tile_##D(const float* q, const u16* K, const u16* V, \
    const int* pos, int T, int H, int KVH, float scale, int window, float* out) { PDL_ENTRY(); attn_tile_impl<D, BQ, BK>(q, K, V, pos, T, H, KVH, scale, window, out); }
ATTN_TILE(64, 32, 64) ATTN_TILE(128, 32, 32) ATTN_TILE(256, 16, 16)

// Output element d of head h, token t: the keys in order (the CPU's recurrence).
DEV float attn_seq_one(const float* scores, const u16* V, const int* pos, int H, int KVH, int D, int window, int maxKeys,
                       int h, int t, int d) {
    int kvh = h / (H / KVH), W = KVH * D;
    int p = pos[t], lo = window > 0 ? max(0, p - window + 1) : 0;
    const float* sr = scores + ((u64)t * H + h) * maxKeys;
    float m = NEG_INF, sum = 0.f, acc = 0.f;
    // Eight keys' scores and values loaded at once, then the in-order recurrence on registers.
    const u16* vc = V + kvh * D + d;
    for (int k0 = lo; k0 <= p; k0 += 8) {
        float sv[8], vv[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            int k = min(k0 + u, p);
            sv[u] = sr[k - lo]; vv[u] = h2f(vc[(u64)k * W]);
        }
#pragma unroll
        for (int u = 0; u < 8; u++) {
            if (k0 + u > p) break;
            float s = sv[u], ms = 1.f, w = 1.f;
            if (s > m) { ms = expf(m - s); m = s; acc = h2f(f2h(acc * ms)); }
            else { w = expf(s - m); }
            acc = h2f(f2h(fmaf(vv[u], w, acc)));
            sum = fmaf(sum, ms, w);
        }
    }
    return acc * (1.f / sum);
}

// grid (H, T), block D.
extern "C" __global__ void attn_seq_f16acc(const float* scores, const u16* V, const int* pos, int H, int KVH, int D, int window,
                                           int maxKeys, float* out) { PDL_ENTRY();
    int h = blockIdx.x, t = blockIdx.y, d = threadIdx.x;
    out[((u64)t * H + h) * D + d] = attn_seq_one(scores, V, pos, H, KVH, D, window, maxKeys, h, t, d);
}

// Element i of a block of 256 threads covering 256 / D heads of token t (row of H · D, a
// multiple of 256): written to out and quantized for the output projection's GEMV (fmt 0:
// q8_0 / q8_1 per warp, 1: q8_K per block), as the separate quantize kernels would.
DEV void attn_out_q(float v, int t, int H, int D, float* out, int fmt, i8* q, float* ad, float* as, int* ai, float* ak) {
    u64 e = (u64)t * H * D + (u64)blockIdx.x * 256;
    out[e + threadIdx.x] = v;
    if (fmt == 0) q8_32_warp(v, (e >> 5) + (threadIdx.x >> 5), threadIdx.x & 31, q, ad, as, ai);
    else q8_K_block(v, e >> 8, q, ak, ai);
}

// attn_seq_f16acc with the quantization fused in: grid (H · D / 256, T), block 256.
extern "C" __global__ void __launch_bounds__(256) attn_seq_f16acc_q(const float* scores, const u16* V, const int* pos, int H, int KVH,
        int D, int window, int maxKeys, float* out, int fmt, i8* q, float* ad, float* as, int* ai, float* ak) { PDL_ENTRY();
    int h = blockIdx.x * (256 / D) + threadIdx.x / D, t = blockIdx.y, d = threadIdx.x % D;
    attn_out_q(attn_seq_one(scores, V, pos, H, KVH, D, window, maxKeys, h, t, d), t, H, D, out, fmt, q, ad, as, ai, ak);
}

// Element i of head h, token t from the S partial results.
DEV float attn_combine_one(const float* part, int H, int D, int S, int h, int t, int i) {
    const float* p = part + ((u64)t * H + h) * S * (D + 2);
    float M = NEG_INF;
    for (int s = 0; s < S; s++) M = fmaxf(M, p[s * (D + 2)]);
    float L = 0.f, a = 0.f;
    for (int s = 0; s < S; s++) {
        const float* r = p + s * (D + 2);
        if (r[0] == NEG_INF) continue;
        float f = expf(r[0] - M);
        L += r[1] * f;
        a += r[2 + i] * f;
    }
    return L > 0.f ? a / L : 0.f;
}

// out [T, H, D] from the S partial results; grid (H, T), block D.
extern "C" __global__ void attn_combine(const float* part, int H, int D, int S, float* out) { PDL_ENTRY();
    int h = blockIdx.x, t = blockIdx.y, i = threadIdx.x;
    out[((u64)t * H + h) * D + i] = attn_combine_one(part, H, D, S, h, t, i);
}

// attn_combine with the quantization fused in: grid (H · D / 256, T), block 256.
extern "C" __global__ void __launch_bounds__(256) attn_combine_q(const float* part, int H, int D, int S, float* out, int fmt, i8* q,
                                                                 float* ad, float* as, int* ai, float* ak) { PDL_ENTRY();
    int h = blockIdx.x * (256 / D) + threadIdx.x / D, t = blockIdx.y, i = threadIdx.x % D;
    attn_out_q(attn_combine_one(part, H, D, S, h, t, i), t, H, D, out, fmt, q, ad, as, ai, ak);
}
"""#
}
