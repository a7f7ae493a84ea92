// Kernels of the decode step that fuse what separate launches did, for contexts short enough
// that one block can walk all of a head's keys.
extension KernelSource {
    static let decode = #"""
// ---------------------------------------------------------------------------------------------
// Short-context attention with llama.cpp's CPU numerics in one kernel: attn_scores_f16q and
// attn_seq_f16acc(_q) fused. A block of 256 threads takes G = 256 / D heads of token t and walks
// the keys lo … p in chunks of ASH_CH staged in shared memory (D = 192: G = 1, a quarter of the
// threads idle in the value walk), the next chunk's keys and values
// loaded into registers while this one is processed: the chunk's scores (a warp per key, the
// lanes' elements, products and warp sum of attn_scores_f16q), then one thread per output
// element carries attn_seq_one's in-order f16 recurrence. Bit-equal to the two kernels; every
// key of a head goes through one block, so it serves short contexts (the decode step's graph is
// captured per context bucket). grid (ceil(H / G), T), block 256; fmt < 0: no quantization, else
// as attn_seq_f16acc_q (then H · D is a multiple of 256).
// MODE: 0 the walk, 1 the walk's factors from a scan (both the CPU's numerics, bit for bit), 2 f32
// (`numerics: fast`, attn_short_f32_<D>): the query as given, and per chunk the heads' maximum,
// factors exp(s - m) and their sum from one warp a head, then every output element's products
// summed in four independent chains and added to its rescaled accumulator — an online softmax
// over chunks in f32 with no serial chain per key (attn_split's arithmetic, another order).
#define ASH_CH 32
// With ROPE (one token, T = 1): q and k not yet rotated, k and v not yet in the cache — the
// rope and the cache store of rope_store done here: the block rotates its heads' queries and its
// KV heads' new key (rope_pair, as rope_store), writes the key and value rows at position p for
// the KV heads whose first query head it holds, and reads key p from its own copy (the others
// may not have written theirs yet). Bit-equal to rope_store followed by the kernel without.
struct RopeArgs { const float* k; const float* v; int rotDim; float thetaScale; float scale; const float* freq; int neox; };
// `wait()` waits for the kernel before (the queries and this chunk's keys and values come from
// it). Without ROPE the first chunk's keys at positions before pos[0] — cache rows of earlier
// steps, complete when this kernel's blocks start — load before it.
template <int D, bool ROPE, int MODE, typename Wait> DEV void attn_short_impl(const float* q, u16* K, u16* V, const int* pos, int H, int KVH,
                                                     float scale, int window, float* out, int fmt, i8* qo, float* ad, float* as, int* ai,
                                                     float* ak, RopeArgs ra, Wait wait) {
    // Heads per block, a lane's elements, warps per head, keys per warp and chunk.
    constexpr int G = 256 / D, NJ = D / 32, WPH = 8 / G, KPW = ASH_CH / WPH;
    constexpr bool SCAN = MODE == 1, F32 = MODE == 2;
    __shared__ __align__(16) u16 ks[ASH_CH][256];
    __shared__ __align__(16) u16 vs[ASH_CH][256];
    // Factors (SCAN, F32 only): SCAN ms and w per key; F32 w per key, fms[g][0 / 1] the chunk's
    // rescaling of what came before and its sum of w.
    __shared__ float ss[G][ASH_CH], fms[MODE ? G : 1][ASH_CH], fw[MODE ? G : 1][ASH_CH];
    __shared__ unsigned upms[SCAN ? G : 1];  // SCAN: the chunk's keys that raise the maximum
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, t = blockIdx.y, h0 = blockIdx.x * G;
    int group = H / KVH, W = KVH * D;
    int p = pos[t], lo = window > 0 ? max(0, p - window + 1) : 0, count = p - lo + 1;
    // Staging: piece i = tid + 256c is key i / 32 of the chunk, slots 8 · (i % 32) … + 7 of its
    // row (slot g · D + d: element d of the block's head g, from that head's KV head).
    int skey[4], scol[4];
    bool sok[4];
#pragma unroll
    for (int c = 0; c < 4; c++) {
        int i = tid + 256 * c, slot = (i & 31) * 8, g = slot / D;
        skey[c] = i >> 5;
        sok[c] = g < G && h0 + g < H;
        scol[c] = ((h0 + g) / group) * D + slot % D;
    }
    __shared__ float qs[ROPE ? 256 : 1], kf[ROPE ? 256 : 1];
    __shared__ __align__(16) u16 knew[ROPE ? 256 : 8], vnew[ROPE ? 256 : 8];
    uint4 rk[4], rv[4];
    // Piece c of cache row k into rk[c], rv[c]; `l2`: through L2 only (ld.global.cg), for rows
    // read before the wait, so that no stale L1 line can be read.
    auto fetch = [&](int c, int k, bool l2) {
        const uint4* kp = (const uint4*)(K + (u64)k * W + scol[c]);
        const uint4* vp = (const uint4*)(V + (u64)k * W + scol[c]);
        rk[c] = l2 ? __ldcg(kp) : *kp;
        rv[c] = l2 ? __ldcg(vp) : *vp;
    };
    // With ROPE key p comes from this block's own row (knew, vnew), once `fresh`.
    auto load = [&](int k0, bool fresh) {
#pragma unroll
        for (int c = 0; c < 4; c++) {
            int k = k0 + skey[c];
            if (ROPE && sok[c] && k == p) {
                int slot = ((tid + 256 * c) & 31) * 8;
                if (fresh) { rk[c] = *(const uint4*)&knew[slot]; rv[c] = *(const uint4*)&vnew[slot]; }
            } else if (sok[c] && k <= p) {
                fetch(c, k, false);
            } else {
                rk[c] = make_uint4(0, 0, 0, 0); rv[c] = rk[c];
            }
        }
    };
    auto store = [&]() {
#pragma unroll
        for (int c = 0; c < 4; c++) {
            int slot = ((tid + 256 * c) & 31) * 8;
            *(uint4*)&ks[skey[c]][slot] = rk[c];
            *(uint4*)&vs[skey[c]][slot] = rv[c];
        }
    };
    // The query of this warp's head, rounded to f16 as attn_scores_f16q does.
    int wg = warp / WPH, wsub = warp % WPH;
    bool wok = h0 + wg < H;
    int g = tid / D;
    bool ok = g < G && h0 + g < H;
    float qv[NJ];
    if constexpr (!ROPE) {
        // The first chunk: keys before pos[0] now (from L2: the completed writes of earlier
        // steps), the chunk's own keys (k ≥ pos[0]) once the kernel before has written them.
        const int p0 = pos[0];
#pragma unroll
        for (int c = 0; c < 4; c++) {
            int k = lo + skey[c];
            if (sok[c] && k <= p && k < p0) fetch(c, k, true);
            else { rk[c] = make_uint4(0, 0, 0, 0); rv[c] = rk[c]; }
        }
        wait();
#pragma unroll
        for (int c = 0; c < 4; c++) {
            int k = lo + skey[c];
            if (sok[c] && k <= p && k >= p0) fetch(c, k, false);
        }
    } else {
        wait();
    }
    if constexpr (ROPE) {
        // The first chunk's cached keys and values start loading before the rope.
        load(lo, false);
        // Slot tid = g · D + d: the query of head h0 + g and the new key of its KV head.
        int hh = min(h0 + g, H - 1), kvh = hh / group, d = tid % D, half = ra.rotDim / 2;
        qs[tid] = q[(u64)hh * D + d];
        kf[tid] = ra.k[(u64)kvh * D + d];
        vnew[tid] = f2h(ra.v[(u64)kvh * D + d]);
        __syncthreads();
        // Pair i of head g (G · half ≤ 128 threads): each reads and writes only its own pair.
        if (tid < G * half) {
            int gg = tid / half, i = tid % half, a, b;
            float x0, x1;
            rope_pair(qs + gg * D, p, i, half, ra.thetaScale, ra.scale, ra.freq, ra.neox, x0, x1, a, b);
            qs[gg * D + a] = x0; qs[gg * D + b] = x1;
            rope_pair(kf + gg * D, p, i, half, ra.thetaScale, ra.scale, ra.freq, ra.neox, x0, x1, a, b);
            kf[gg * D + a] = x0; kf[gg * D + b] = x1;
        }
        __syncthreads();
        knew[tid] = f2h(kf[tid]);
        // The KV head's row at p, written by the block holding its first query head.
        if (ok && (h0 + g) % group == 0) {
            K[(u64)p * W + kvh * D + d] = knew[tid];
            V[(u64)p * W + kvh * D + d] = vnew[tid];
        }
        __syncthreads();
        // Key p, when in the first chunk, from the rows just made.
#pragma unroll
        for (int c = 0; c < 4; c++) {
            int slot = ((tid + 256 * c) & 31) * 8;
            if (sok[c] && lo + skey[c] == p) { rk[c] = *(const uint4*)&knew[slot]; rv[c] = *(const uint4*)&vnew[slot]; }
        }
#pragma unroll
        for (int j = 0; j < NJ; j++) qv[j] = F32 ? qs[wg * D + lane + 32 * j] : h2f(f2h(qs[wg * D + lane + 32 * j]));
    } else {
        const float* qr = q + ((u64)t * H + min(h0 + wg, H - 1)) * D;
#pragma unroll
        for (int j = 0; j < NJ; j++) qv[j] = F32 ? qr[lane + 32 * j] : h2f(f2h(qr[lane + 32 * j]));
    }
    float m = NEG_INF, sum = 0.f, acc = 0.f;
    int chunks = (count + ASH_CH - 1) / ASH_CH;
    store();
    __syncthreads();
    for (int c = 0; c < chunks; c++) {
        int k0 = lo + c * ASH_CH, n = min(ASH_CH, p - k0 + 1);
        if (c + 1 < chunks) load(k0 + ASH_CH, true);
        if (wok) {
            // The warp's keys wsub + u · WPH, their sums interleaved (warp_sum's steps per key).
            float part_[KPW];
#pragma unroll
            for (int u = 0; u < KPW; u++) {
                const u16* kr = ks[wsub + u * WPH] + wg * D + lane;
                float a = 0.f;
#pragma unroll
                for (int j = 0; j < NJ; j++) a += qv[j] * h2f(kr[32 * j]);
                part_[u] = a;
            }
            // warp_sum's butterfly (partners 16, 8, 4, 2, 1; own value first) as a reduce-scatter:
            // while a lane holds several keys it keeps half of them (the upper half when its
            // partner bit is set) and adds its partner's values of those, so each key's sum has
            // warp_sum's pairs, the same bits, and ends in the 32 / KPW lanes from u · 32 / KPW.
#pragma unroll
            for (int lvl = 0; lvl < 5; lvl++) {
                const int o = 16 >> lvl, hk = KPW >> (lvl + 1);
                if (hk >= 1) {
                    bool hi = lane & o;
                    // A constant bound, so that part_ stays in registers once unrolled.
#pragma unroll
                    for (int i = 0; i < KPW / 2; i++) {
                        if (i >= hk) continue;
                        float send = hi ? part_[i] : part_[i + hk], keep = hi ? part_[i + hk] : part_[i];
                        part_[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
                    }
                } else {
                    part_[0] += __shfl_xor_sync(0xffffffffu, part_[0], o);
                }
            }
            int key = wsub + (lane / (32 / KPW)) * WPH;
            if (lane % (32 / KPW) == 0 && key < n) ss[wg][key] = part_[0] * scale;
        }
        __syncthreads();
        if constexpr (F32) {
        // The chunk's maximum, factors and their sum per head (warp g, lane = key), then every
        // output element: acc · (the rescaling) + the chunk's products in four chains.
        if (warp < G && h0 + warp < H) {
            float s = lane < n ? ss[warp][lane] : NEG_INF, cm = s;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, o));
            float mn = fmaxf(m, cm), w = lane < n ? expf(s - mn) : 0.f;
            fw[warp][lane] = w;
            float ws = warp_sum(w);
            if (lane == 0) { fms[warp][0] = m == NEG_INF ? 0.f : expf(m - mn); fms[warp][1] = ws; }
            m = mn;
        }
        __syncthreads();
        if (ok) {
            float c0 = 0.f, c1 = 0.f, c2 = 0.f, c3 = 0.f;
            int k = 0;
            for (; k + 4 <= n; k += 4) {
                c0 = fmaf(fw[g][k], h2f(vs[k][tid]), c0);
                c1 = fmaf(fw[g][k + 1], h2f(vs[k + 1][tid]), c1);
                c2 = fmaf(fw[g][k + 2], h2f(vs[k + 2][tid]), c2);
                c3 = fmaf(fw[g][k + 3], h2f(vs[k + 3][tid]), c3);
            }
            for (; k < n; k++) c0 = fmaf(fw[g][k], h2f(vs[k][tid]), c0);
            float r = fms[g][0];
            acc = fmaf(acc, r, (c0 + c1) + (c2 + c3));
            sum = fmaf(sum, r, fms[g][1]);
        }
        } else if constexpr (!SCAN) {
        if (ok) {
            // Eight keys' scores and values read at once, then the in-order recurrence.
            for (int k8 = 0; k8 < n; k8 += 8) {
                float sv[8], vv[8];
#pragma unroll
                for (int u = 0; u < 8; u++) { sv[u] = ss[g][k8 + u]; vv[u] = h2f(vs[k8 + u][tid]); }
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    if (k8 + u >= n) break;
                    float s = sv[u], ms = 1.f, w = 1.f;
                    if (s > m) { ms = expf(m - s); m = s; acc = h2f(f2h(acc * ms)); }
                    else { w = expf(s - m); }
                    acc = h2f(f2h(fmaf(vv[u], w, acc)));
                    sum = fmaf(sum, ms, w);
                }
            }
        }
        } else {
        // SCAN (the default; `SWIFTKT_CUDA_ATTN_SCAN=0` walks): the chunk's softmax factors once
        // per head (warp g, lane = key): the running maximum before each key by a scan instead of
        // the walk (take the later only when greater, so ties, NaN and -inf keep the earlier, as
        // the walk's `s > m`), then the walk's ms, w; the walk then carries only the f16
        // multiply-adds. A ballot marks the keys that raise the maximum (ms may differ from 1).
        if (warp < G && h0 + warp < H) {
            float s = lane < n ? ss[warp][lane] : NEG_INF, x = s > NEG_INF ? s : NEG_INF;
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                float y = __shfl_up_sync(0xffffffffu, x, o);
                if (lane >= o && !(x > y)) x = y;
            }
            float before = __shfl_up_sync(0xffffffffu, x, 1);
            before = lane == 0 || !(before > m) ? m : before;
            bool up = s > before;
            fms[warp][lane] = up ? expf(before - s) : 1.f;
            fw[warp][lane] = up ? 1.f : expf(s - before);
            unsigned ups = __ballot_sync(0xffffffffu, up);
            if (lane == 0) upms[warp] = ups;
            float last = __shfl_sync(0xffffffffu, x, 31);
            if (last > m) m = last;
        }
        __syncthreads();
        if (ok) {
            // Eight keys' factors and values read at once, then the in-order f16 recurrence (with
            // ms = 1 the walk's acc · ms rounding is the identity, so it is skipped). Eight keys
            // none of which raises the maximum take the multiply-adds alone, without a branch
            // between them (fma(sum, 1, w) = sum + w).
            unsigned ups = upms[g];
            for (int k8 = 0; k8 < n; k8 += 8) {
                if (k8 + 8 <= n && ((ups >> k8) & 0xffu) == 0) {
                    float wv[8], vv[8];
#pragma unroll
                    for (int u = 0; u < 8; u++) { wv[u] = fw[g][k8 + u]; vv[u] = h2f(vs[k8 + u][tid]); }
#pragma unroll
                    for (int u = 0; u < 8; u++) { acc = h2f(f2h(fmaf(vv[u], wv[u], acc))); sum = sum + wv[u]; }
                    continue;
                }
                float mv[8], wv[8], vv[8];
#pragma unroll
                for (int u = 0; u < 8; u++) { mv[u] = fms[g][k8 + u]; wv[u] = fw[g][k8 + u]; vv[u] = h2f(vs[k8 + u][tid]); }
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    if (k8 + u >= n) break;
                    if (mv[u] != 1.f) acc = h2f(f2h(acc * mv[u]));
                    acc = h2f(f2h(fmaf(vv[u], wv[u], acc)));
                    sum = fmaf(sum, mv[u], wv[u]);
                }
            }
        }
        }
        __syncthreads();
        if (c + 1 < chunks) {
            store();
            __syncthreads();
        }
    }
    float r = acc * (1.f / sum);
    if (fmt < 0) {
        if (ok) out[((u64)t * H + h0 + g) * D + tid % D] = r;
    } else {
        attn_out_q(r, t, H, D, out, fmt, qo, ad, as, ai, ak);
    }
}
#define ATTN_SHORT(D, SFX, MODE) extern "C" __global__ void __launch_bounds__(256) attn_short_##SFX##D(const float* q, u16* K, \
        u16* V, const int* pos, int H, int KVH, float scale, int window, float* out, int fmt, i8* qo, float* ad, float* as, int* ai, \
        float* ak) { \
    TL_BEGIN(); attn_short_impl<D, false, MODE>(q, K, V, pos, H, KVH, scale, window, out, fmt, qo, ad, as, ai, ak, RopeArgs{}, PDL_WAIT_HERE); } \
    extern "C" __global__ void __launch_bounds__(256) attn_short_rope_##SFX##D(const float* q, u16* K, u16* V, \
        const int* pos, int H, int KVH, float scale, int window, float* out, int fmt, i8* qo, float* ad, float* as, int* ai, float* ak, \
        const float* k, const float* v, int rotDim, float thetaScale, float ropeScale, const float* freq, int neox) { \
    TL_BEGIN(); attn_short_impl<D, true, MODE>(q, K, V, pos, H, KVH, scale, window, out, fmt, qo, ad, as, ai, ak, \
                                               RopeArgs{k, v, rotDim, thetaScale, ropeScale, freq, neox}, PDL_WAIT_HERE); }
ATTN_SHORT(32, , 0) ATTN_SHORT(64, , 0) ATTN_SHORT(128, , 0) ATTN_SHORT(256, , 0)
ATTN_SHORT(32, scan_, 1) ATTN_SHORT(64, scan_, 1) ATTN_SHORT(128, scan_, 1) ATTN_SHORT(256, scan_, 1)
// f32 (`numerics: fast`; GPUOps.attention for chunks below the tiled kernel's): no rope form.
#define ATTN_SHORT_F32(D) extern "C" __global__ void __launch_bounds__(256) attn_short_f32_##D(const float* q, u16* K, u16* V, \
        const int* pos, int H, int KVH, float scale, int window, float* out, int fmt, i8* qo, float* ad, float* as, int* ai, float* ak) { \
    TL_BEGIN(); attn_short_impl<D, false, 2>(q, K, V, pos, H, KVH, scale, window, out, fmt, qo, ad, as, ai, ak, RopeArgs{}, PDL_WAIT_HERE); }
ATTN_SHORT_F32(32) ATTN_SHORT_F32(64) ATTN_SHORT_F32(128) ATTN_SHORT_F32(256)
// Head width 192 (deepseek2's MLA with attn_kv_b: 128 + 64): one head per block, 192 of the 256
// threads carry the value walk; no rope form and no fused quantization (a head is not a whole
// number of 256-blocks, and MLA's output goes through mla_merge first).
extern "C" __global__ void __launch_bounds__(256) attn_short_192(const float* q, u16* K, u16* V, const int* pos, int H, int KVH,
        float scale, int window, float* out, int fmt, i8* qo, float* ad, float* as, int* ai, float* ak) {
    TL_BEGIN(); attn_short_impl<192, false, 0>(q, K, V, pos, H, KVH, scale, window, out, -1, qo, ad, as, ai, ak, RopeArgs{}, PDL_WAIT_HERE); }
extern "C" __global__ void __launch_bounds__(256) attn_short_scan_192(const float* q, u16* K, u16* V, const int* pos, int H, int KVH,
        float scale, int window, float* out, int fmt, i8* qo, float* ad, float* as, int* ai, float* ak) {
    TL_BEGIN(); attn_short_impl<192, false, 1>(q, K, V, pos, H, KVH, scale, window, out, -1, qo, ad, as, ai, ak, RopeArgs{}, PDL_WAIT_HERE); }

"""#
}
