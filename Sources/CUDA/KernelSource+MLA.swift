// Multi-head latent attention (DeepSeek-V2's MLA, Models/MLA.swift) for files with `attn_kv_b`:
// the pieces around the ordinary attention kernels. The GPU keeps the CPU's cache layout — per
// token and head a full key [k_nope (nope) | k_pe (rot)] and a value [v (vd) | zeros], both
// D = nope + rot wide, f16, [capacity, heads · D] per layer — so that the attention kernels run
// unchanged with head width D and kvHeads = heads:
//
//   mla_rope   queries' last rot values of each head and the shared k_pe rotated (YaRN), the
//              compressed kv c split off kv_a's output [T, r + rot] into its own rows [T, r]
//   mla_store  kv_b's output [T, heads, nope + vd] and k_pe into the caches at each token's position
//   mla_merge  the attention output [T, heads, D] → [T, heads · vd] for attn_output
//
// The YaRN rope takes YarnRope.table's steps (θ by repeated products, the ramp, the magnitude)
// with explicit round-to-nearest operations, so that no FMA contraction the CPU does not do
// changes them; cos and sin are CUDA's (within an ulp or two of glibc's, as in `rope`).
extension KernelSource {
    static let mla = #"""
// ---------------------------------------------------------------------------------------------
// Multi-head latent attention (attn_kv_b files).

// cos and sin of rotation pair i at position p, as YarnRope.table: theta = p · thetaScale^i,
// interpolated by freqScale and, with extFactor ≠ 0, mixed back towards theta below the
// correction dims lo … hi; both scaled by `mag` (the host's YarnRope.magnitude).
DEV void yarn_cos_sin(int p, int i, float thetaScale, float freqScale, float extFactor, float lo, float hi, float mag,
                      float& c, float& s) {
    float theta = (float)p;
    for (int k = 0; k < i; k++) theta = __fmul_rn(theta, thetaScale);
    float interp = __fmul_rn(freqScale, theta), t = interp;
    if (extFactor != 0.f) {
        float y = __fdiv_rn(__fsub_rn((float)i, lo), fmaxf(0.001f, __fsub_rn(hi, lo)));
        float ramp = __fmul_rn(__fsub_rn(1.f, fminf(1.f, fmaxf(0.f, y))), extFactor);
        t = __fadd_rn(__fmul_rn(interp, __fsub_rn(1.f, ramp)), __fmul_rn(theta, ramp));
    }
    c = __fmul_rn(cosf(t), mag);
    s = __fmul_rn(sinf(t), mag);
}

// The normal (GPT-J) rotation of the pair (v[2i], v[2i + 1]), with the CPU's contraction
// (YarnRope.apply, as GCC compiles ggml's expressions; rope_pair's).
DEV void yarn_rotate(float* v, int i, float c, float s) {
    float x0 = v[2 * i], x1 = v[2 * i + 1];
    v[2 * i] = fmaf(x0, c, -__fmul_rn(x1, s));
    v[2 * i + 1] = fmaf(x0, s, __fmul_rn(x1, c));
}

// MLA's rope and split for a chunk. q [T, heads, nope + rot]: block (t, h < heads) rotates the
// last rot values of query head h in place. ca [T, r + rot] (kv_a's output): block (t, heads)
// copies its first r values to c [T, r] and rotates its last rot (the shared k_pe) in place.
// grid (T, heads + 1), block ≥ rot / 2 (thread i: pair i).
extern "C" __global__ void mla_rope(float* q, float* ca, float* c, const int* pos, int heads, int nope, int rot, int r,
                                    float thetaScale, float freqScale, float extFactor, float lo, float hi, float mag) { PDL_ENTRY();
    int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
    float* row = ca + (u64)t * (r + rot);
    if (h == heads) for (int j = i; j < r; j += blockDim.x) c[(u64)t * r + j] = row[j];
    if (i >= rot / 2) return;
    float cs, sn;
    yarn_cos_sin(pos[t], i, thetaScale, freqScale, extFactor, lo, hi, mag, cs, sn);
    yarn_rotate(h < heads ? q + ((u64)t * heads + h) * (nope + rot) + nope : row + r, i, cs, sn);
}

// Keys and values of every head into the f16 caches at the tokens' positions, as the CPU's rows
// (MultiLatentAttention.cacheRows): key h = [k_nope_h | k_pe], value h = [v_h | zeros], D = nope
// + rot wide. kv [T, heads, nope + vd] (kv_b's output: k_nope_h then v_h); k_pe of token t at
// ca + t · (r + rot) + r (rotated by mla_rope); K, V [capacity, heads · D].
// grid (T, heads), block 128.
extern "C" __global__ void mla_store(const float* kv, const float* ca, u16* K, u16* V, const int* pos, int heads, int nope, int rot,
                                     int vd, int r) { PDL_ENTRY();
    int t = blockIdx.x, h = blockIdx.y, D = nope + rot;
    const float* src = kv + ((u64)t * heads + h) * (nope + vd);
    const float* pe = ca + (u64)t * (r + rot) + r;
    u64 row = ((u64)pos[t] * heads + h) * D;
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        K[row + j] = f2h(j < nope ? src[j] : pe[j - nope]);
        V[row + j] = j < vd ? f2h(src[nope + j]) : (u16)0;
    }
}

// The first vd outputs of each head (the rest are the zero-padded values' zeros):
// out [T · heads, vd] from attn [T · heads, D]; count = T · heads · vd. grid (blocks over count), block 256.
extern "C" __global__ void mla_merge(const float* attn, float* out, int D, int vd, u64 count) { PDL_ENTRY();
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    u64 th = i / (u64)vd;
    out[i] = attn[th * D + (i - th * vd)];
}
"""#
}
