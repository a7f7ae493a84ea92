// AMX kernels (see include/CPUKernelsAMX.h): the tile-unit build and the software model of it.
#include "CPUKernelsAMX.h"
#include <stdlib.h>
#include <string.h>

typedef int32_t v16i __attribute__((ext_vector_type(16)));
typedef uint32_t v16u __attribute__((ext_vector_type(16)));
typedef float v16f __attribute__((ext_vector_type(16)));
typedef uint8_t v32u8 __attribute__((ext_vector_type(32)));
typedef uint8_t v16u8 __attribute__((ext_vector_type(16)));
typedef _Float16 v16h __attribute__((ext_vector_type(16)));

/// Bytes offset..<offset + 8 of two octets (8 rows each) as 16 int32 (macros: a vector result of
/// a function compiled without AVX-512 would change the calling convention).
#define amx_gather16b(o0, o1, offset) __extension__({ \
    v16u8 bytes_; memcpy(&bytes_, (o0) + (offset), 8); memcpy((uint8_t *)&bytes_ + 8, (o1) + (offset), 8); \
    __builtin_convertvector(bytes_, v16i); })
/// The 8 f16 at `offset` of two octets, as 16 halves.
#define amx_gather16h(o0, o1, offset) __extension__({ \
    v16h halves_; memcpy(&halves_, (o0) + (offset), 16); memcpy((uint8_t *)&halves_ + 16, (o1) + (offset), 16); halves_; })

/// vpmaddwd: per 32-bit lane, the products of the two int16 halves summed (a macro: a vector
/// argument to a function compiled without AVX-512 would change the calling convention).
#define AMX_MADD16_MODEL(a, b) \
    ((v16i)((v16u)(a) << 16) >> 16) * ((v16i)((v16u)(b) << 16) >> 16) + ((v16i)(a) >> 16) * ((v16i)(b) >> 16)

// MARK: - The software model of the tiles

typedef struct {
    uint8_t rows[8];
    uint16_t colsb[8];
    _Alignas(64) uint8_t data[8][16][64];
} amx_model;
static _Thread_local amx_model model;

static void model_config(const void *config) {
    const uint8_t *c = config;
    for (int t = 0; t < 8; t++) {
        uint16_t colsb;
        memcpy(&colsb, c + 16 + 2 * t, 2);
        model.colsb[t] = colsb;
        model.rows[t] = c[48 + t];
    }
    memset(model.data, 0, sizeof model.data);
}

static void model_load(int t, const void *base, long stride) {
    for (int r = 0; r < model.rows[t]; r++) memcpy(model.data[t][r], (const uint8_t *)base + r * stride, model.colsb[t]);
}

static void model_store(int t, void *base, long stride) {
    for (int r = 0; r < model.rows[t]; r++) memcpy((uint8_t *)base + r * stride, model.data[t][r], model.colsb[t]);
}

static void model_zero(int t) { memset(model.data[t], 0, sizeof model.data[t]); }

/// TDPBSUD: C[m][j] += Σ_k Σ_i A[m][4k + i] (signed) · B[k][4j + i] (unsigned).
static void model_dpbsud(int c, int a, int b) {
    for (int m = 0; m < model.rows[c]; m++)
        for (int j = 0; j < model.colsb[c] / 4; j++) {
            int32_t sum;
            memcpy(&sum, &model.data[c][m][4 * j], 4);
            for (int k = 0; k < model.colsb[a] / 4; k++)
                for (int i = 0; i < 4; i++)
                    sum += (int32_t)(int8_t)model.data[a][m][4 * k + i] * (int32_t)model.data[b][k][4 * j + i];
            memcpy(&model.data[c][m][4 * j], &sum, 4);
        }
}

#define KERNEL_NAME swiftkt_amx_q4k_emulated
#define KERNEL_ATTR
#define TILE_CONFIG(config) model_config(config)
#define TILE_LOAD(t, base, stride) model_load(t, base, stride)
#define TILE_ZERO(t) model_zero(t)
#define TILE_DPBSUD(c, a, b) model_dpbsud(c, a, b)
#define TILE_STORE(t, base, stride) model_store(t, base, stride)
#define TILE_RELEASE() ((void)0)
#define MADD16(a, b) (AMX_MADD16_MODEL(a, b))
#include "AMXQ4KBody.h"
#undef KERNEL_NAME
#undef KERNEL_ATTR
#undef TILE_CONFIG
#undef TILE_LOAD
#undef TILE_ZERO
#undef TILE_DPBSUD
#undef TILE_STORE
#undef TILE_RELEASE
#undef MADD16

// MARK: - The tile unit (x86-64 Linux)

#if defined(__x86_64__) && defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

int swiftkt_amx_available(void) {
    static int cached = -1;
    if (cached >= 0) return cached;
    unsigned a, b, c, d;
    int ok = 0;
    // Leaf 7: EBX avx512f (16), avx512bw (30), avx512vl (31); EDX amx-tile (24), amx-int8 (25).
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1) && (d >> 25 & 1) && (b >> 16 & 1) && (b >> 30 & 1) && (b >> 31 & 1)) {
        // ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): the kernel grants tile data
        // to the whole process; without it the first tile load faults.
        ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
    cached = ok;
    return ok;
}

#define AMX_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define KERNEL_NAME swiftkt_amx_q4k
#define KERNEL_ATTR AMX_TARGET
#define TILE_CONFIG(config) _tile_loadconfig(config)
#define TILE_LOAD(t, base, stride) _tile_loadd(t, base, stride)
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_DPBSUD(c, a, b) _tile_dpbsud(c, a, b)
#define TILE_STORE(t, base, stride) _tile_stored(t, base, stride)
#define TILE_RELEASE() _tile_release()
#define MADD16(a, b) ((v16i)_mm512_madd_epi16((__m512i)(a), (__m512i)(b)))
#include "AMXQ4KBody.h"
#else
int swiftkt_amx_available(void) { return 0; }
int swiftkt_amx_q4k(const swiftkt_amx_q4k_args *args) { return swiftkt_amx_q4k_emulated(args); }
#endif
