// Sampling on the GPU: the next token from a logits row without downloading the row. The same
// chain as Engine's host Sampler (llama.cpp's default): penalties → top-k → top-p → min-p →
// temperature → one draw `r` in [0, 1) supplied by the host's seeded generator.
//
// top-k is a radix select on order-preserving 32-bit keys of the logits (8 bits per pass): a
// block finds the k-th largest key, takes every larger key, and the keys equal to it in index
// order, so that ties resolve to the lowest token ids, as the host's (logit desc, id asc) order
// does. Two steps: blocks select the top k of their slice of the vocabulary (sorted), then one
// block selects the top k of those candidates, sorts them and does the rest in one thread, in
// the host's order (sequential sums), exps rounded from double, which the host's expf matches
// but in rare last-bit cases (CUDA's own expf, up to 2 ulp off, moved a k-1024 draw).
extension KernelSource {
    static let sampling = #"""
// ---------------------------------------------------------------------------------------------
// Sampling.

// A key that orders like the float: larger float, larger unsigned key.
// (−0 is taken as +0: the host compares them equal and breaks the tie by id.)
DEV u32 order_key(float f) {
    u32 u = __float_as_uint(f);
    if (u == 0x80000000u) u = 0;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
// e^x rounded from double: correctly rounded, as the host's glibc expf is in all but rare cases
// (it is within 0.502 ulp); CUDA's own expf is off by up to 2 ulp, enough to move a draw that
// lands near a boundary of the distribution.
DEV float exp_host(float x) { return (float)exp((double)x); }
DEV float key_float(u32 k) { return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k); }

// Penalties as the host's Sampler applies them (no fused multiply-adds: same roundings).
extern "C" __global__ void apply_penalties(float* logits, const int* ids, const int* counts, int m, float repeat, float freq, float presence) { PDL_ENTRY();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m) return;
    float l = logits[ids[i]];
    if (repeat != 1.0f) l = l > 0.0f ? __fdiv_rn(l, repeat) : __fmul_rn(l, repeat);
    l = __fsub_rn(l, __fadd_rn(__fmul_rn((float)counts[i], freq), presence));
    logits[ids[i]] = l;
}

// The block's top-k of items 0 ..< count (keyOf(i), idOf(i)), k ≤ count, into skey/sid
// [0, k), unordered except that ties at the threshold come in index order. blockDim.x a
// multiple of 32, ≤ 1024. Shared: hist[256], scan[32], misc[4].
template <class KeyOf, class IdOf>
DEV void block_top_k(KeyOf keyOf, IdOf idOf, int count, int k, u32* hist, int* scan, int* misc, u32* skey, int* sid) {
    const int tid = threadIdx.x, nt = blockDim.x;
    u32 prefix = 0, mask = 0;
    int remaining = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = tid; b < 256; b += nt) hist[b] = 0;
        __syncthreads();
        for (int i = tid; i < count; i += nt) {
            u32 key = keyOf(i);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            int above = 0, b = 255;
            for (; b > 0; b--) { if (above + (int)hist[b] >= remaining) break; above += hist[b]; }
            misc[0] = b; misc[1] = remaining - above;
        }
        __syncthreads();
        prefix |= (u32)misc[0] << shift; mask |= 255u << shift; remaining = misc[1];
        __syncthreads();
    }
    // prefix is the k-th largest key; `remaining` items equal to it complete the k.
    const u32 threshold = prefix;
    const int greater = k - remaining;
    if (tid == 0) misc[2] = 0;
    __syncthreads();
    for (int i = tid; i < count; i += nt) {
        u32 key = keyOf(i);
        if (key > threshold) { int s = atomicAdd(&misc[2], 1); skey[s] = key; sid[s] = idOf(i); }
    }
    // Equal keys in index order: contiguous ranges per thread, ranks by a block scan.
    const int per = (count + nt - 1) / nt, lo = tid * per, hi = min(lo + per, count);
    int mine = 0;
    for (int i = lo; i < hi; i++) mine += keyOf(i) == threshold;
    int incl = mine;
    for (int o = 1; o < 32; o <<= 1) { int v = __shfl_up_sync(0xffffffffu, incl, o); if ((tid & 31) >= o) incl += v; }
    if ((tid & 31) == 31) scan[tid >> 5] = incl;
    __syncthreads();
    if (tid == 0) { int acc = 0; for (int w = 0; w < nt / 32; w++) { int v = scan[w]; scan[w] = acc; acc += v; } }
    __syncthreads();
    int rank = scan[tid >> 5] + incl - mine;
    for (int i = lo; i < hi && rank < remaining; i++) {
        if (keyOf(i) == threshold) { skey[greater + rank] = threshold; sid[greater + rank] = idOf(i); rank++; }
    }
    __syncthreads();
}

// Sorts n ≤ 1024 (key, id) pairs in shared memory by key descending, id ascending (bitonic over
// the next power of two, padded with the smallest entries). sort[] holds ≥ that many u64.
DEV void block_sort_desc(const u32* skey, const int* sid, int n, unsigned long long* sort) {
    int p = 1; while (p < n) p <<= 1;
    for (int i = threadIdx.x; i < p; i += blockDim.x)
        sort[i] = i < n ? ((unsigned long long)skey[i] << 32) | (u32)(0x7fffffff - sid[i]) : 0ull;
    __syncthreads();
    for (int size = 2; size <= p; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < p; i += blockDim.x) {
                int j = i ^ stride;
                if (j > i) {
                    bool desc = (i & size) == 0;
                    unsigned long long a = sort[i], b = sort[j];
                    if (desc ? a < b : a > b) { sort[i] = b; sort[j] = a; }
                }
            }
            __syncthreads();
        }
    }
}

#define SAMPLE_MAX_K 1024

// Step 1: block b takes the top k of logits [b·slice, min(n, (b+1)·slice)) and writes them
// sorted to cand[b·k ...] (keys; ids), padded with key 0 where the slice is shorter than k.
extern "C" __global__ void __launch_bounds__(1024) sample_topk_slices(const float* logits, int n, int slice, int k, u32* ckey, int* cid) { PDL_ENTRY();
    __shared__ u32 hist[256]; __shared__ int scan[32]; __shared__ int misc[4];
    __shared__ u32 skey[SAMPLE_MAX_K]; __shared__ int sid[SAMPLE_MAX_K];
    __shared__ unsigned long long sort[SAMPLE_MAX_K];
    const int base = blockIdx.x * slice, count = max(0, min(slice, n - base)), kk = min(k, count);
    if (kk > 0)
        block_top_k([&](int i) { return order_key(logits[base + i]); }, [&](int i) { return base + i; }, count, kk, hist, scan, misc, skey, sid);
    block_sort_desc(skey, sid, kk, sort);
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        u64 at = (u64)blockIdx.x * k + i;
        if (i < kk) { ckey[at] = (u32)(sort[i] >> 32); cid[at] = 0x7fffffff - (int)(u32)sort[i]; }
        else { ckey[at] = 0; cid[at] = 0x7fffffff; }
    }
}

// Step 2 (one block): the top k of the candidates, sorted, then top-p, min-p, temperature and
// the draw, as Sampler.sample does on the host. out[0] = token id, out[1] = candidates kept.
extern "C" __global__ void __launch_bounds__(1024) sample_finish(const u32* ckey, const int* cid, int total, int k,
                                                                 float topP, float minP, float temperature, float r, int* out) { PDL_ENTRY();
    __shared__ u32 hist[256]; __shared__ int scan[32]; __shared__ int misc[4];
    __shared__ u32 skey[SAMPLE_MAX_K]; __shared__ int sid[SAMPLE_MAX_K];
    __shared__ unsigned long long sort[SAMPLE_MAX_K];
    __shared__ float e[SAMPLE_MAX_K];
    block_top_k([&](int i) { return ckey[i]; }, [&](int i) { return cid[i]; }, total, k, hist, scan, misc, skey, sid);
    block_sort_desc(skey, sid, k, sort);
    // Softmax of the candidates (before temperature): exps in parallel, sums in order.
    const float top = key_float((u32)(sort[0] >> 32));
    for (int i = threadIdx.x; i < k; i += blockDim.x) e[i] = exp_host(key_float((u32)(sort[i] >> 32)) - top);
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (int i = 0; i < k; i++) s = __fadd_rn(s, e[i]);
        int keep = k;
        if (topP < 1.0f) {
            float mass = 0.0f;
            for (int i = 0; i < k; i++) { mass = __fadd_rn(mass, __fdiv_rn(e[i], s)); if (mass >= topP) { keep = i + 1; break; } }
        }
        if (minP > 0.0f) {
            float best = __fdiv_rn(e[0], s), bound = __fmul_rn(minP, best);
            int m = 0;
            while (m < keep && __fdiv_rn(e[m], s) >= bound) m++;
            keep = max(1, m);
        }
        misc[3] = keep;
    }
    __syncthreads();
    const int keep = misc[3];
    const float mt = __fdiv_rn(top, temperature);
    for (int i = threadIdx.x; i < keep; i += blockDim.x) e[i] = exp_host(__fsub_rn(__fdiv_rn(key_float((u32)(sort[i] >> 32)), temperature), mt));
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.0f;
        for (int i = 0; i < keep; i++) s = __fadd_rn(s, e[i]);
        float acc = 0.0f;
        int pick = keep - 1;
        for (int i = 0; i < keep; i++) { acc = __fadd_rn(acc, __fdiv_rn(e[i], s)); if (r < acc) { pick = i; break; } }
        out[0] = 0x7fffffff - (int)(u32)sort[pick];
        out[1] = keep;
    }
}
// A chained decode step's input (CUDADecoder.enqueueChained): the token the last sampling picked
// (out[0] of argmax or sample_finish; outside 0 ..< rows of the embedding table — a row without a
// pick — token 0, as GPUSampler.pickedToken reads it) and the step's position, where the decode
// graph reads them.
extern "C" __global__ void chain_token(const int* picked, int rows, int* ids, int* positions, int pos) { PDL_ENTRY();
    if (threadIdx.x == 0 && blockIdx.x == 0) { int t = picked[0]; ids[0] = t >= 0 && t < rows ? t : 0; positions[0] = pos; }
}
"""#
}
