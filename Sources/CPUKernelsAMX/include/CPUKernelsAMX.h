// Intel AMX (Advanced Matrix Extensions) kernels for the CPU experts' prompt-sized batches.
// C because Swift cannot spell AMX: the tile instructions take immediate tile numbers, and
// Clang's intrinsics for them are macros. The arithmetic is the scalar reference's
// (CPUKernels' QuantizedDot.dotReference), so results are bit-identical to it.
//
// Every kernel exists twice, from one body (AMXQ4KBody.h): on the AMX tile unit, and on a
// software model of the tile registers (`…_emulated`) that runs on any CPU, so the packing
// and the scaling around the tiles are tested where there is no AMX.
#ifndef SWIFTKT_CPUKERNELS_AMX_H
#define SWIFTKT_CPUKERNELS_AMX_H

#include <stdint.h>

/// One call of the q4_K kernel: y[t, r] for tokens 0..<tokens (a multiple of 4: the reference
/// rounds per 64 elements for tokens in whole groups of 4) and the rows of panel pairs
/// pairStart..<pairEnd (pair u = panels 2u and 2u + 1 of Core's KQuantLanePanels, both present).
typedef struct {
    /// KQuantLanePanels: panels of 8 rows, `panelBytes` apart; `octetBytes` per 256 columns.
    const uint8_t *panels;
    long panelBytes, octetBytes;
    /// Columns / 256, and the matrix's rows (y's row stride; rows past it are not written).
    long blocks, rows;
    long pairStart, pairEnd;
    /// q8_K activations: qs [tokens, blocks · 256], d [tokens, blocks],
    /// pair sums [tokens, blocks · 4] (two int16 sub-block sums per word).
    const int8_t *qs;
    const float *scales;
    const int32_t *pairSums;
    long tokens;
    /// y [tokens, rows].
    float *y;
} swiftkt_amx_q4k_args;

/// 1 when this CPU has AMX-TILE and AMX-INT8 and the kernel let this process use the tile
/// data (Linux: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); asks once.
int swiftkt_amx_available(void);

/// The q4_K kernel on the tile unit. Only when swiftkt_amx_available() returned 1. Returns 0, or
/// -1 without writing y when its scratch memory could not be allocated.
int swiftkt_amx_q4k(const swiftkt_amx_q4k_args *args);

/// The same kernel with the tile instructions modelled in software (any CPU; slow).
int swiftkt_amx_q4k_emulated(const swiftkt_amx_q4k_args *args);

#endif
