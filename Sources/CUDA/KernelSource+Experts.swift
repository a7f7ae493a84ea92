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
