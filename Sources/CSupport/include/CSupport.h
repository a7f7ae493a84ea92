// CPU hints that Swift cannot spell: Clang's intrinsic headers define them as macros, which
// Swift does not import. Header-only; every function is inlined into its Swift caller.
#ifndef SWIFTKT_CSUPPORT_H
#define SWIFTKT_CSUPPORT_H

/// Asks the CPU to bring the cache line holding `p` into all cache levels (a read is coming).
static inline __attribute__((always_inline)) void swiftkt_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

#endif
