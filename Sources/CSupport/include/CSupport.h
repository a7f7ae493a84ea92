// CPU operations that Swift cannot spell: Clang's intrinsic headers define them as macros (they
// take immediate operands), which Swift does not import. Header-only; each function is inlined
// into its Swift caller, whose module must be compiled for a CPU with the named features.
#ifndef SWIFTKT_CSUPPORT_H
#define SWIFTKT_CSUPPORT_H

/// Asks the CPU to bring the cache line holding `p` into all cache levels (a read is coming).
static inline __attribute__((always_inline)) void swiftkt_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#include <stdio.h>

/// Flushes stdout; nonzero when that failed or an earlier write did (print() buffers, so a full
/// disk or a closed reader shows only as the stream's error flag).
static inline int swiftkt_stdout_failed(void) {
    return fflush(stdout) != 0 || ferror(stdout) != 0;
}

#if defined(__linux__)
#include <malloc.h>

/// Keeps freed blocks below `bytes` in glibc's heap for reuse (mallopt M_MMAP_THRESHOLD, and
/// M_TRIM_THRESHOLD at twice that). By default glibc serves large blocks with fresh mappings
/// until its adaptive threshold catches up, so a forward pass's megabyte-sized temporaries are
/// page-faulted in (and zeroed by the kernel) again and again.
static inline void swiftkt_malloc_keep_blocks_below(int bytes) {
    mallopt(M_MMAP_THRESHOLD, bytes);
    mallopt(M_TRIM_THRESHOLD, 2 * bytes);
}

/// Returns the free memory glibc holds in its heaps to the system (malloc_trim), e.g. once a
/// model is loaded or a request is done.
static inline void swiftkt_malloc_trim(void) {
    malloc_trim(0);
}

#include <sys/syscall.h>
#include <unistd.h>

/// The CPUs this process may run on (its affinity mask, at most `max`), in order, into `out`;
/// returns their count (0 when the mask cannot be read). Raw syscalls: no _GNU_SOURCE macros.
static inline int swiftkt_allowed_cpus(int *out, int max) {
    unsigned long mask[16] = {0};
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
    if (bytes <= 0) return 0;
    int n = 0, bits = (int)(8 * sizeof(unsigned long));
    for (int cpu = 0; cpu < (int)(bytes * 8) && n < max; cpu++)
        if (mask[cpu / bits] & (1UL << (cpu % bits))) out[n++] = cpu;
    return n;
}

/// Asks the kernel to keep the pages of [addr, addr + len) on NUMA node `node`, moving those
/// already there (mbind, MPOL_PREFERRED with MPOL_MF_MOVE; addr page-aligned); 0 on success.
static inline long swiftkt_prefer_node(void *addr, unsigned long len, int node) {
    unsigned long mask[16] = {0};
    int bits = (int)(8 * sizeof(unsigned long));
    if (node < 0 || node >= 16 * bits) return -1;
    mask[node / bits] |= 1UL << (node % bits);
    // maxnode is one more than the mask's bits: the kernel reads maxnode − 1 of them.
    return syscall(SYS_mbind, addr, len, 1 /* MPOL_PREFERRED */, mask, (unsigned long)(16 * bits + 1), 2 /* MPOL_MF_MOVE */);
}

/// Binds the calling thread to CPU `cpu`; 0 on success.
static inline int swiftkt_pin_current_thread(int cpu) {
    unsigned long mask[16] = {0};
    int bits = (int)(8 * sizeof(unsigned long));
    if (cpu < 0 || cpu >= 16 * bits) return -1;
    mask[cpu / bits] |= 1UL << (cpu % bits);
    return (int)syscall(SYS_sched_setaffinity, 0, sizeof(mask), mask);
}
#endif

#if defined(__x86_64__)
#include <immintrin.h>

/// Eight floats rounded to the nearest f16 value (ties to even; subnormals, overflow to ±inf),
/// as floats: `vcvtps2ph` with rounding mode 0, then `vcvtph2ps` (F16C).
static inline __attribute__((always_inline, target("avx,f16c"))) __m256 swiftkt_round_to_half8(__m256 x) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, 0));
}

/// Eight floats to the bit patterns of their nearest f16 values (ties to even): `vcvtps2ph`
/// with rounding mode 0 (F16C; Swift cannot call the intrinsic, a macro over a builtin).
static inline __attribute__((always_inline, target("avx,f16c"))) __m128i swiftkt_float_to_half8(__m256 x) {
    return _mm256_cvtps_ph(x, 0);
}

/// `vpdpbusd` on 256 bits (AVX-512 VL + VNNI): acc + per 32-bit lane the 4 products of unsigned
/// bytes of `a` with signed bytes of `b` (the intrinsic is a macro, which Swift cannot call).
static inline __attribute__((always_inline, target("avx2,avx512f,avx512vl,avx512vnni"))) __m256i swiftkt_dpbusd8(__m256i acc, __m256i a, __m256i b) {
    return _mm256_dpbusd_epi32(acc, a, b);
}
#endif

#endif
