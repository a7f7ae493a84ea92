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
