// Hand-over lab: what one dependent launch costs in a captured graph, and whether a flag in
// global memory (release by the producer, acquire-spin by the consumer) hands over faster than
// programmatic dependent launch's griddepcontrol.wait (grid completion + flush).
//
// The chain imitates a decode layer's "small kernel -> GEMV" pairs: `small` is one block of
// 1 024 threads (a norm: reads the GEMV output and the residual, writes 4 096 floats); `big` is
// a GEMV-shaped grid (BLOCKS x 128 threads) whose threads load their weights (a fresh 9.4 MB
// region per pair, so DRAM streams them) before they wait, then read the small kernel's output
// and write one float a warp. 32 pairs per graph, median of 30 replays.
//
// Modes: 0 every kernel waits with griddepcontrol.wait (the shipped scheme);
//        1 big spins on the small kernel's flag instead (small keeps the PDL wait);
//        2 as 1, and small spins on a counter that every big block bumps (release) at its end.
// A flag is reset by the kernel after its consumer (that kernel's own wait means every spinner
// is done), so each replay starts from zero. Built by scripts/gpu/lab/handover.sh with nvcc.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e)); exit(1); } } while (0)
typedef unsigned long long u64;

__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_launch() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
__device__ __forceinline__ void release_add(unsigned* p, unsigned v) { asm volatile("red.release.gpu.global.add.u32 [%0], %1;" :: "l"(p), "r"(v) : "memory"); }
__device__ __forceinline__ unsigned acquire_ld(const unsigned* p) { unsigned v; asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory"); return v; }
__device__ __forceinline__ void spin(const unsigned* p, unsigned target, int backoff) {
    while (acquire_ld(p) < target) { if (backoff) __nanosleep(backoff); }
}

// in: the GEMV output (n floats), x: the residual; out = normalized sum (n = 4096, 1024 threads).
__global__ void __launch_bounds__(1024) small_k(const float* in, float* x, float* out, int n, int mode, unsigned* waitFlag,
                                               unsigned waitTarget, unsigned* myFlag, unsigned* resetFlag, int backoff) {
    if (mode == 2 && waitFlag) {
        if (threadIdx.x == 0) spin(waitFlag, waitTarget, backoff);
        __syncthreads();
        pdl_launch();
    } else { pdl_wait(); pdl_launch(); }
    if (resetFlag && threadIdx.x == 0) *resetFlag = 0;
    __shared__ float part[32];
    float4 a = __ldcg((const float4*)in + threadIdx.x), b = __ldcg((const float4*)x + threadIdx.x);
    float4 s = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
    float ss = s.x * s.x + s.y * s.y + s.z * s.z + s.w * s.w;
    for (int o = 16; o; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = part[threadIdx.x];
        for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    float r = rsqrtf(part[0] / n + 1e-6f);
    ((float4*)x)[threadIdx.x] = s;
    ((float4*)out)[threadIdx.x] = make_float4(s.x * r, s.y * r, s.z * r, s.w * r);
    if (mode >= 1 && myFlag) {
        __syncthreads();
        if (threadIdx.x == 0) release_add(myFlag, 1);
    }
}

// W: this pair's weights (blocks * 128 threads * PER uint4); in: the small kernel's output.
template <int PER> __global__ void __launch_bounds__(128) big_k(const uint4* W, const float* in, float* out, int mode,
                                                                unsigned* waitFlag, unsigned* myFlag, unsigned* resetFlag, int backoff) {
    uint4 w[PER];
    const uint4* p = W + (u64)blockIdx.x * 128 * PER + threadIdx.x;
#pragma unroll
    for (int i = 0; i < PER; i++) w[i] = __ldg(p + i * 128);
    if (mode >= 1) {
        if (threadIdx.x == 0) spin(waitFlag, 1, backoff);
        __syncthreads();
        pdl_launch();
    } else { pdl_wait(); pdl_launch(); }
    if (resetFlag && blockIdx.x == 0 && threadIdx.x == 0) *resetFlag = 0;
    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < PER; i++) {
        float v = __ldcg(in + ((threadIdx.x * 4 + i) & 4095));
        acc += v * (float)(w[i].x & 255) + (float)(w[i].y & 255) - (float)(w[i].z & 255) + (float)(w[i].w & 255);
    }
    for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) out[(blockIdx.x * 4 + (threadIdx.x >> 5)) & 4095] = acc;
    if (mode == 2) {
        __syncthreads();
        if (threadIdx.x == 0) release_add(myFlag, 1);
    }
}

template <typename K, typename... A> void launch(cudaStream_t s, K k, int grid, int block, bool pdl, A... args) {
    cudaLaunchConfig_t c = {};
    c.gridDim = grid; c.blockDim = block; c.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    c.attrs = at; c.numAttrs = pdl ? 1 : 0;
    CK(cudaLaunchKernelEx(&c, k, args...));
}

int main() {
    const int pairs = 32, n = 4096, PER = 6;
    int dev = 0; cudaDeviceProp prop; CK(cudaGetDeviceProperties(&prop, dev));
    printf("# hand-over lab on %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    cudaStream_t s; CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float *x, *y, *o; unsigned* flags;
    CK(cudaMalloc(&x, n * 4)); CK(cudaMalloc(&y, n * 4)); CK(cudaMalloc(&o, n * 4));
    CK(cudaMemset(x, 0, n * 4)); CK(cudaMemset(y, 0, n * 4)); CK(cudaMemset(o, 0, n * 4));
    CK(cudaMalloc(&flags, 4 * 4 * (2 * pairs + 4))); CK(cudaMemset(flags, 0, 4 * 4 * (2 * pairs + 4)));
    auto F = [&](int i) { return flags + 4 * i; };  // 16 bytes apart
    const int blockSets[] = {792, 512, 3584};
    size_t maxW = (size_t)3584 * 128 * PER * 16 * pairs;
    uint4* W; CK(cudaMalloc(&W, maxW)); CK(cudaMemset(W, 1, maxW));
    printf("| big blocks | MB a big | mode | backoff ns | µs a pair (median of 30) | min |\n|---:|---:|---|---:|---:|---:|\n");
    for (int blocks : blockSets) {
        size_t per = (size_t)blocks * 128 * PER;
        for (int mode = 0; mode < 3; mode++) for (int backoff : {0, 32}) {
            if (mode == 0 && backoff) continue;
            cudaGraph_t g; cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
            for (int i = 0; i < pairs; i++) {
                // small i: waits for big i-1 (mode 2: its counter), resets the flag that big i-1 spun on.
                unsigned* wf = (mode == 2 && i > 0) ? F(2 * i - 1) : nullptr;
                unsigned* rf = (mode >= 1 && i > 0) ? F(2 * i - 2) : nullptr;
                launch(s, small_k, 1, 1024, true, (const float*)o, x, y, n, mode, wf, (unsigned)blocks, F(2 * i), rf, backoff);
                unsigned* rb = (mode == 2 && i > 0) ? F(2 * i - 1) : nullptr;
                launch(s, big_k<PER>, blocks, 128, true, (const uint4*)(W + per * i), (const float*)y, o, mode, F(2 * i), F(2 * i + 1), rb, backoff);
            }
            // the tail: a kernel that waits for everything and resets the last flags
            launch(s, small_k, 1, 1024, true, (const float*)o, x, y, n, 0, (unsigned*)nullptr, 0u, (unsigned*)nullptr, F(2 * pairs - 2), 0);
            launch(s, small_k, 1, 1024, true, (const float*)o, x, y, n, 0, (unsigned*)nullptr, 0u, (unsigned*)nullptr, F(2 * pairs - 1), 0);
            CK(cudaStreamEndCapture(s, &g));
            CK(cudaGraphInstantiate(&ge, g, 0));
            for (int w = 0; w < 5; w++) CK(cudaGraphLaunch(ge, s));
            CK(cudaStreamSynchronize(s));
            cudaEvent_t a, b; CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
            std::vector<float> t;
            for (int r = 0; r < 30; r++) {
                CK(cudaEventRecord(a, s)); CK(cudaGraphLaunch(ge, s)); CK(cudaEventRecord(b, s));
                CK(cudaEventSynchronize(b));
                float ms; CK(cudaEventElapsedTime(&ms, a, b)); t.push_back(ms * 1000.f / pairs);
            }
            std::sort(t.begin(), t.end());
            printf("| %d | %.1f | %d | %d | %.2f | %.2f |\n", blocks, per * 16 / 1e6, mode, backoff, t[t.size() / 2], t[0]);
            fflush(stdout);
            CK(cudaGraphExecDestroy(ge)); CK(cudaGraphDestroy(g));
        }
    }
    CK(cudaDeviceSynchronize());
    return 0;
}
