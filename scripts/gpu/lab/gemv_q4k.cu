// GEMV lab: q4_K decode (one token) kernel variants against the shipped one, on the GPU machine.
// Built by scripts/gpu/lab/run.sh with nvcc; the shipped kernels (KernelSource.swift's text)
// come in as kernels.cuh. Each variant is checked against the shipped kernel's output, then
// timed as CUDA graphs of 32 launches over rotating weight copies (> L2), median of 20 replays.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
#include <cmath>
#include <cuda_runtime.h>
#include "kernels.cuh"

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); exit(1); } } while (0)

// The variants below use the shipped helpers (scale_min_pair, select3, warp_sum); v2 is the
// shipped one-token kernel itself (mmv1_q4_K, which it became).

// One lane's part of a q4_K dot product: `halves` 16-byte halves of a sub-block pair's nibbles
// (q[0..halves)) against the matching activation ints (a: low nibbles' then high nibbles'),
// the min term from mi (zero for a second half).
template <int H> DEV float q4k_part(uint4 h, const uint4* q, const int4* a, int2 mi, float dK, int pr) {
    int sa, ma, sb, mb; scale_min_pair(h, pr, sa, ma, sb, mb);
    float d = h2f((u16)(h.x & 0xffffu)), dmin = h2f((u16)(h.x >> 16));
    int s1 = 0, s2 = 0;
#pragma unroll
    for (int k = 0; k < H; k++) {
        u32 qw[4] = {q[k].x, q[k].y, q[k].z, q[k].w};
        int lo[4] = {a[k].x, a[k].y, a[k].z, a[k].w}, hi[4] = {a[H + k].x, a[H + k].y, a[H + k].z, a[H + k].w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
            s1 = __dp4a((int)(qw[j] & 0x0F0F0F0Fu), lo[j], s1);
            s2 = __dp4a((int)((qw[j] >> 4) & 0x0F0F0F0Fu), hi[j], s2);
        }
    }
    return dK * ((d * (float)sa * (float)s1 - dmin * (float)ma * (float)mi.x) + (d * (float)sb * (float)s2 - dmin * (float)mb * (float)mi.y));
}

// Loads of lane pair pi: header, 32 nibble bytes, 64 activation bytes, the two Σq.
struct PairLoads { uint4 h; uint4 q[2]; int4 a[4]; int2 mi; float dK; };
DEV PairLoads load_pair(const u8* row, int pi, const i8* aq, const int* ai, const float* ak) {
    PairLoads l;
    const u8* k = row + (pi >> 2) * 144;
    l.h = *(const uint4*)k;
    const uint4* qp = (const uint4*)(k + 16 + 32 * (pi & 3));
    l.q[0] = qp[0]; l.q[1] = qp[1];
    const int4* a4 = (const int4*)(aq + (u64)pi * 64);
    // Sub-block 2pr (the low nibbles' elements 0-31), then 2pr+1 (the high nibbles').
    l.a[0] = a4[0]; l.a[1] = a4[1]; l.a[2] = a4[2]; l.a[3] = a4[3];
    l.mi = *(const int2*)(ai + 2 * pi);
    l.dK = ak[pi >> 2];
    return l;
}

// V1: the shipped layout (warp per row, lane per sub-block pair), header in one 16-byte load.
extern "C" __global__ void __launch_bounds__(128) v1_hdr(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq,
                                                         const int* __restrict__ ai, const float* __restrict__ ak) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    Sel sel;
    if (!select3(blockIdx.x * 4 + warp, MATS_ARGS, sel)) return;
    const u8* row = sel.W + (u64)sel.r * rowBytes;
    float acc = 0.f;
    for (int pi = lane; pi < cols / 64; pi += 32) {
        PairLoads l = load_pair(row, pi, aq, ai, ak);
        acc += q4k_part<2>(l.h, l.q, l.a, l.mi, l.dK, pi & 3);
    }
    float v = warp_sum(acc);
    if (lane == 0) sel.y[sel.r] = v;
}

// V3: V1 with the loop unrolled by two: both iterations' loads issued before any arithmetic.
extern "C" __global__ void __launch_bounds__(128) v3_unroll2(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq,
                                                             const int* __restrict__ ai, const float* __restrict__ ak) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    Sel sel;
    if (!select3(blockIdx.x * 4 + warp, MATS_ARGS, sel)) return;
    const u8* row = sel.W + (u64)sel.r * rowBytes;
    int pairs = cols / 64;
    float acc = 0.f;
    int pi = lane;
    for (; pi + 32 < pairs; pi += 64) {
        PairLoads l0 = load_pair(row, pi, aq, ai, ak), l1 = load_pair(row, pi + 32, aq, ai, ak);
        acc += q4k_part<2>(l0.h, l0.q, l0.a, l0.mi, l0.dK, pi & 3);
        acc += q4k_part<2>(l1.h, l1.q, l1.a, l1.mi, l1.dK, (pi + 32) & 3);
    }
    if (pi < pairs) {
        PairLoads l = load_pair(row, pi, aq, ai, ak);
        acc += q4k_part<2>(l.h, l.q, l.a, l.mi, l.dK, pi & 3);
    }
    float v = warp_sum(acc);
    if (lane == 0) sel.y[sel.r] = v;
}

// Half pair hp (16 nibble bytes: elements 0-15 or 16-31 of sub-blocks 2pr and 2pr+1); the min
// term on the first half only.
DEV float q4k_half(const u8* row, int hp, const i8* aq, const int* ai, const float* ak) {
    int pi = hp >> 1, half = hp & 1, s = pi >> 2, pr = pi & 3;
    const u8* k = row + s * 144;
    uint4 h = *(const uint4*)k;
    uint4 q = *(const uint4*)(k + 16 + 32 * pr + 16 * half);
    const i8* ap = aq + (u64)pi * 64 + 16 * half;
    int4 a[2] = {*(const int4*)ap, *(const int4*)(ap + 32)};
    int2 mi = half == 0 ? *(const int2*)(ai + 2 * pi) : make_int2(0, 0);
    return q4k_part<1>(h, &q, a, mi, ak[s], pr);
}

// V4: a block of NT threads per row, a thread per half pair, block reduction.
template <int NT> __device__ void v4_impl(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq,
                                          const int* __restrict__ ai, const float* __restrict__ ak) {
    __shared__ float red[NT / 32];
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    Sel sel;
    if (!select3(blockIdx.x, MATS_ARGS, sel)) return;
    const u8* row = sel.W + (u64)sel.r * rowBytes;
    float acc = 0.f;
    for (int hp = tid; hp < cols / 32; hp += NT) acc += q4k_half(row, hp, aq, ai, ak);
    acc = warp_sum(acc);
    if (lane == 0) red[warp] = acc;
    __syncthreads();
    if (tid == 0) {
        float v = 0.f;
#pragma unroll
        for (int w = 0; w < NT / 32; w++) v += red[w];
        sel.y[sel.r] = v;
    }
}
extern "C" __global__ void __launch_bounds__(128) v4_block128(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq, const int* __restrict__ ai, const float* __restrict__ ak) { v4_impl<128>(MATS_ARGS, rowBytes, cols, aq, ai, ak); }
extern "C" __global__ void __launch_bounds__(64) v4_block64(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq, const int* __restrict__ ai, const float* __restrict__ ak) { v4_impl<64>(MATS_ARGS, rowBytes, cols, aq, ai, ak); }

// V5: a warp per row, a lane per half pair (V4's work split without the block reduction).
extern "C" __global__ void __launch_bounds__(128) v5_warp_half(MATS, u64 rowBytes, int cols, const i8* __restrict__ aq,
                                                               const int* __restrict__ ai, const float* __restrict__ ak) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    Sel sel;
    if (!select3(blockIdx.x * 4 + warp, MATS_ARGS, sel)) return;
    const u8* row = sel.W + (u64)sel.r * rowBytes;
    float acc = 0.f;
#pragma unroll 2
    for (int hp = lane; hp < cols / 32; hp += 32) acc += q4k_half(row, hp, aq, ai, ak);
    float v = warp_sum(acc);
    if (lane == 0) sel.y[sel.r] = v;
}

// Read bandwidth: each thread sums 16-byte words, grid-stride.
extern "C" __global__ void read_bw(const uint4* p, u64 n, u32* out) {
    u32 s = 0;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (u64)gridDim.x * blockDim.x) { uint4 v = p[i]; s ^= v.x ^ v.y ^ v.z ^ v.w; }
    if (s == 0x12345678u) *out = s;
}

extern "C" __global__ void empty_kernel(float* p) { if (threadIdx.x == 1023) p[0] = 1.f; }

// µs per launch of `fn` as a graph of 32 launches, median of 20 replays.
template <class F> static double graph_us(cudaStream_t st, F fn) {
    cudaGraph_t g; cudaGraphExec_t ge; cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < 32; i++) fn(i);
    CK(cudaStreamEndCapture(st, &g)); CK(cudaGraphInstantiate(&ge, g, 0));
    std::vector<float> ts;
    for (int i = 0; i < 22; i++) { cudaEventRecord(a, st); CK(cudaGraphLaunch(ge, st)); cudaEventRecord(b, st); cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms, a, b); if (i > 1) ts.push_back(ms); }
    std::sort(ts.begin(), ts.end());
    cudaGraphExecDestroy(ge); cudaGraphDestroy(g);
    return ts[ts.size() / 2] * 1000 / 32;
}

static u16 f2h_host(float f) { // positive normal values only
    u32 b; memcpy(&b, &f, 4);
    int e = ((b >> 23) & 0xff) - 127 + 15;
    if (e <= 0) return 0;
    return (u16)((e << 10) | ((b >> 13) & 0x3ff));
}

typedef void (*Launch)(cudaStream_t, const u8* W, int rows, int cols, float* y, const i8* aq, const float* ad, const float* as, const int* ai, const float* ak);

int main(int argc, char** argv) {
    int dev = 0; cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, dev));
    printf("device %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
    // Read bandwidth over 2 GiB.
    {
        u64 bytes = 2ull << 30; uint4* p; u32* o; CK(cudaMalloc(&p, bytes)); CK(cudaMalloc(&o, 4)); CK(cudaMemset(p, 1, bytes));
        cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
        std::vector<float> ts;
        for (int i = 0; i < 12; i++) { cudaEventRecord(a); read_bw<<<prop.multiProcessorCount * 8, 512>>>(p, bytes / 16, o); cudaEventRecord(b); cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms, a, b); if (i > 1) ts.push_back(ms); }
        std::sort(ts.begin(), ts.end());
        printf("read bandwidth: %.0f GB/s (median of 10, 2 GiB)\n", bytes / (ts[ts.size() / 2] * 1e-3) / 1e9);
        CK(cudaFree(p)); CK(cudaFree(o));
    }
    struct Shape { int rows, cols; const char* name; };
    Shape shapes[] = {{4096, 4096, "attn_output 4096x4096"}, {6144, 4096, "qkv 6144x4096"}, {28672, 4096, "gate+up 28672x4096"},
                      {4096, 14336, "down 4096x14336"}, {128256, 4096, "lm head 128256x4096"}};
    const char* names[] = {"shipped 8-token mmvq_q4_K", "v1_hdr", "v2_rows2 (shipped mmv1_q4_K)", "v3_unroll2", "v4_block128", "v4_block64", "v5_warp_half"};
    const int NV = 7;
    srand(1);
    for (auto& sh : shapes) {
        int rows = sh.rows, cols = sh.cols;
        u64 rowBytes = (u64)cols / 256 * 144, mat = rowBytes * rows;
        int copies = (int)std::max<u64>(1, std::min<u64>(32, (400ull << 20) / mat + 1));
        std::vector<u8> host(mat);
        for (u64 i = 0; i < mat; i++) host[i] = (u8)rand();
        for (u64 b = 0; b < mat / 144; b++) {
            u16 d = f2h_host(0.001f + 0.01f * (rand() / (float)RAND_MAX)), m = f2h_host(0.001f + 0.01f * (rand() / (float)RAND_MAX));
            memcpy(&host[b * 144], &d, 2); memcpy(&host[b * 144 + 2], &m, 2);
        }
        u8* W; CK(cudaMalloc(&W, mat * copies));
        for (int c = 0; c < copies; c++) CK(cudaMemcpy(W + mat * c, host.data(), mat, cudaMemcpyHostToDevice));
        std::vector<float> xh(cols); for (auto& v : xh) v = (rand() / (float)RAND_MAX) * 2.f - 1.f;
        float* x; CK(cudaMalloc(&x, cols * 4)); CK(cudaMemcpy(x, xh.data(), cols * 4, cudaMemcpyHostToDevice));
        i8* aq; float *ad, *as, *ak; int* ai; float* y;
        CK(cudaMalloc(&aq, cols)); CK(cudaMalloc(&ad, cols / 32 * 4)); CK(cudaMalloc(&as, cols / 32 * 4)); CK(cudaMalloc(&ai, cols / 32 * 4)); CK(cudaMalloc(&ak, cols / 256 * 4));
        CK(cudaMalloc(&y, (u64)rows * 4 * NV));
        quantize_q8_K<<<cols / 256, 256>>>(x, aq, ak, ai);
        CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
        auto launch = [&](int v, cudaStream_t st, const u8* w, float* out) {
            const u8* z = nullptr;
            switch (v) {
            case 0: mmvq_q4_K<<<(rows + 3) / 4, 128, 0, st>>>(w, z, z, rows, 0, 0, out, nullptr, nullptr, rowBytes, cols, aq, ad, as, ai, ak, 1); break;
            case 1: v1_hdr<<<(rows + 3) / 4, 128, 0, st>>>(w, z, z, rows, 0, 0, out, nullptr, nullptr, rowBytes, cols, aq, ai, ak); break;
            case 2: mmv1_q4_K<<<(rows + 7) / 8, 128, 0, st>>>(w, z, z, rows, 0, 0, out, nullptr, nullptr, rowBytes, cols, aq, ai, ak); break;
            case 3: v3_unroll2<<<(rows + 3) / 4, 128, 0, st>>>(w, z, z, rows, 0, 0, out, nullptr, nullptr, rowBytes, cols, aq, ai, ak); break;
            case 4: v4_block128<<<rows, 128, 0, st>>>(w, z, z, rows, 0, 0, out, nullptr, nullptr, rowBytes, cols, aq, ai, ak); break;
            case 5: v4_block64<<<rows, 64, 0, st>>>(w, z, z, rows, 0, 0, out, nullptr, nullptr, rowBytes, cols, aq, ai, ak); break;
            case 6: v5_warp_half<<<(rows + 3) / 4, 128, 0, st>>>(w, z, z, rows, 0, 0, out, nullptr, nullptr, rowBytes, cols, aq, ai, ak); break;
            }
        };
        // correctness
        std::vector<float> ref(rows), got(rows);
        for (int v = 0; v < NV; v++) {
            CK(cudaMemset(y + (u64)rows * v, 0xff, rows * 4));
            launch(v, 0, W, y + (u64)rows * v); CK(cudaGetLastError());
        }
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(ref.data(), y, rows * 4, cudaMemcpyDeviceToHost));
        printf("\n%s: %.1f MB, %d copies\n", sh.name, mat / 1e6, copies);
        printf("| kernel | rel err vs shipped | µs (graph, median) | GB/s |\n|---|---|---|---|\n");
        cudaStream_t st; CK(cudaStreamCreate(&st));
        cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
        for (int v = 0; v < NV; v++) {
            CK(cudaMemcpy(got.data(), y + (u64)rows * v, rows * 4, cudaMemcpyDeviceToHost));
            double num = 0, den = 0; bool nan = false;
            for (int r = 0; r < rows; r++) { if (got[r] != got[r]) nan = true; num += (double)(got[r] - ref[r]) * (got[r] - ref[r]); den += (double)ref[r] * ref[r]; }
            double err = nan ? 1e9 : sqrt(num / den);
            // graph of 32 launches over rotating copies
            cudaGraph_t g; cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
            for (int i = 0; i < 32; i++) launch(v, st, W + mat * (i % copies), y + (u64)rows * v);
            CK(cudaStreamEndCapture(st, &g)); CK(cudaGraphInstantiate(&ge, g, 0));
            std::vector<float> ts;
            for (int i = 0; i < 22; i++) { cudaEventRecord(a, st); CK(cudaGraphLaunch(ge, st)); cudaEventRecord(b, st); cudaEventSynchronize(b); float ms; cudaEventElapsedTime(&ms, a, b); if (i > 1) ts.push_back(ms); }
            std::sort(ts.begin(), ts.end());
            double us = ts[ts.size() / 2] * 1000 / 32;
            printf("| %s | %.2e | %.2f | %.0f |\n", names[v], err, us, mat / (us * 1e-6) / 1e9);
            cudaGraphExecDestroy(ge); cudaGraphDestroy(g);
        }
        CK(cudaGetLastError());
        cudaFree(W); cudaFree(x); cudaFree(aq); cudaFree(ad); cudaFree(as); cudaFree(ai); cudaFree(ak); cudaFree(y);
    }
    {
        cudaStream_t st; CK(cudaStreamCreate(&st));
        float* x; CK(cudaMalloc(&x, 14336 * 4)); CK(cudaMemset(x, 0, 14336 * 4));
        i8* aq; float* ak; int* ai; CK(cudaMalloc(&aq, 14336)); CK(cudaMalloc(&ak, 256)); CK(cudaMalloc(&ai, 2048));
        printf("\nempty kernel (1 block): %.2f µs per graph node\n", graph_us(st, [&](int) { empty_kernel<<<1, 32, 0, st>>>(x); }));
        printf("empty kernel (528 blocks of 128): %.2f µs\n", graph_us(st, [&](int) { empty_kernel<<<528, 128, 0, st>>>(x); }));
        printf("quantize_q8_K 4096: %.2f µs\n", graph_us(st, [&](int) { quantize_q8_K<<<16, 256, 0, st>>>(x, aq, ak, ai); }));
        printf("quantize_q8_K 14336: %.2f µs\n", graph_us(st, [&](int) { quantize_q8_K<<<56, 256, 0, st>>>(x, aq, ak, ai); }));
        CK(cudaGetLastError());
    }
    return 0;
}
