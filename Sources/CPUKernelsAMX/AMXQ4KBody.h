// The q4_K kernel's body, included twice by AMXQ4K.c: once on the tile unit, once on the
// software model of the tiles. It expects KERNEL_NAME, KERNEL_ATTR, TILE_CONFIG, TILE_LOAD,
// TILE_ZERO, TILE_DPBSUD, TILE_STORE, TILE_RELEASE and MADD16 to be defined.
//
// Tiles (one configuration for the whole call):
//   0, 1  C: 16 tokens × 16 rows of int32 — a sub-block's sums (the pair's first and second)
//   2, 3  A: 16 tokens × 32 int8 activations (one 32-element sub-block each)
//   4, 5  B: 8 × 64 bytes, the 16 rows' 4-bit quants of the two sub-blocks in the VNNI order the
//         tile multiply wants (row k: each weight row's elements 4k…4k+3), which is the lane
//         panels' own order (4 bytes per row, 8 rows per 32 bytes), masked to one nibble.
// TDPBSUD multiplies signed activations by unsigned quants into exact int32 sums; what follows
// is the reference's arithmetic per 64 elements (QuantizedDot.dotReference, tokens in whole
// groups of 4): sumi = sc₀·dot₀ + sc₁·dot₁ and summ = m₀·bsum₀ + m₁·bsum₁ in integers, then
// acc += f(sumi)·(d·d_act) and accm += f(summ)·(dmin·d_act) fused, y = acc − accm.
KERNEL_ATTR int KERNEL_NAME(const swiftkt_amx_q4k_args *args) {
    const long blocks = args->blocks, n = blocks * 256, tokens = args->tokens, rows = args->rows;
    const long groups = (tokens + 15) / 16, rem = tokens % 16;
    float *acc = aligned_alloc(64, (size_t)tokens * 2 * 64);
    if (!acc) return -1;
    float *accm = acc + tokens * 16;
    // The last group's tokens when fewer than 16, padded with zero rows (a tile loads 16 rows).
    int8_t *pad = NULL;
    if (rem) {
        pad = aligned_alloc(64, (size_t)(16 * n));
        if (!pad) { free(acc); return -1; }
        memset(pad, 0, (size_t)(16 * n));
        memcpy(pad, args->qs + (tokens - rem) * n, (size_t)(rem * n));
    }
    struct { uint8_t palette, startRow, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; } config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 6; t++) {
        config.rows[t] = t >= 4 ? 8 : 16;
        config.colsb[t] = (t == 2 || t == 3) ? 32 : 64;
    }
    TILE_CONFIG(&config);
    _Alignas(64) uint8_t blo[8 * 64], bhi[8 * 64];
    _Alignas(64) int32_t c0[16 * 16], c1[16 * 16];
    for (long u = args->pairStart; u < args->pairEnd; u++) {
        const uint8_t *p0 = args->panels + 2 * u * args->panelBytes, *p1 = p0 + args->panelBytes;
        memset(acc, 0, (size_t)tokens * 2 * 64);
        for (long b = 0; b < blocks; b++) {
            const uint8_t *o0 = p0 + b * args->octetBytes, *o1 = p1 + b * args->octetBytes;
            // The 16 rows' d and dmin (8 f16 of each octet), as floats: exact conversions.
            const v16f d = __builtin_convertvector(amx_gather16h(o0, o1, 0), v16f);
            const v16f dmin = __builtin_convertvector(amx_gather16h(o0, o1, 16), v16f);
            for (int c = 0; c < 4; c++) {
                for (int k = 0; k < 8; k++) {
                    v32u8 q0, q1;
                    memcpy(&q0, o0 + 160 + (8 * c + k) * 32, 32);
                    memcpy(&q1, o1 + 160 + (8 * c + k) * 32, 32);
                    v32u8 l0 = q0 & (uint8_t)15, l1 = q1 & (uint8_t)15, h0 = q0 >> 4, h1 = q1 >> 4;
                    memcpy(blo + 64 * k, &l0, 32); memcpy(blo + 64 * k + 32, &l1, 32);
                    memcpy(bhi + 64 * k, &h0, 32); memcpy(bhi + 64 * k + 32, &h1, 32);
                }
                TILE_LOAD(4, blo, 64);
                TILE_LOAD(5, bhi, 64);
                // The rows' scales of sub-blocks 2c and 2c + 1, and their mins as one word of two int16.
                const v16i sc0 = amx_gather16b(o0, o1, 32 + 8 * (2 * c)), sc1 = amx_gather16b(o0, o1, 32 + 8 * (2 * c + 1));
                const v16i mw = amx_gather16b(o0, o1, 96 + 8 * (2 * c)) | (amx_gather16b(o0, o1, 96 + 8 * (2 * c + 1)) << 16);
                for (long g = 0; g < groups; g++) {
                    const long t0 = 16 * g, count = tokens - t0 < 16 ? tokens - t0 : 16;
                    const int8_t *a = (count < 16 ? pad : args->qs + t0 * n) + b * 256 + 64 * c;
                    TILE_LOAD(2, a, n);
                    TILE_LOAD(3, a + 32, n);
                    TILE_ZERO(0);
                    TILE_ZERO(1);
                    TILE_DPBSUD(0, 2, 4);
                    TILE_DPBSUD(1, 3, 5);
                    TILE_STORE(0, c0, 64);
                    TILE_STORE(1, c1, 64);
                    for (long m = 0; m < count; m++) {
                        const long t = t0 + m;
                        v16i dot0, dot1;
                        memcpy(&dot0, c0 + 16 * m, 64);
                        memcpy(&dot1, c1 + 16 * m, 64);
                        const v16i sumi = dot0 * sc0 + dot1 * sc1;
                        const float ad = args->scales[t * blocks + b];
                        const v16i ps = (v16i)(int32_t)args->pairSums[t * blocks * 4 + b * 4 + c];
                        const v16i summ = MADD16(ps, mw);
                        v16f x, xm;
                        memcpy(&x, acc + 16 * t, 64);
                        memcpy(&xm, accm + 16 * t, 64);
                        x = __builtin_elementwise_fma(__builtin_convertvector(sumi, v16f), d * ad, x);
                        xm = __builtin_elementwise_fma(__builtin_convertvector(summ, v16f), dmin * ad, xm);
                        memcpy(acc + 16 * t, &x, 64);
                        memcpy(accm + 16 * t, &xm, 64);
                    }
                }
            }
        }
        const long r0 = 16 * u, valid = rows - r0 < 16 ? rows - r0 : 16;
        for (long t = 0; t < tokens; t++)
            for (long j = 0; j < valid; j++) args->y[t * rows + r0 + j] = acc[16 * t + j] - accm[16 * t + j];
    }
    TILE_RELEASE();
    free(pad);
    free(acc);
    return 0;
}
