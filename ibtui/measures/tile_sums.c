/* Gaussian kernel sums over pairs of point tiles, for ibtui.measures.kernel_tiles (which says why and how the
 * tiles are chosen). Compiled on the user's machine by ibtui.measures.native; PyTorch does the same sums more
 * slowly where no C compiler is found.
 *
 * For each tile pair p = (row[p], col[p]) it computes K_ij = 2^(factor·‖a_i − b_j‖²) for the tiles' points a_i,
 * b_j, then for the first n_need[p] scales q (kernel K^(2^steps[q]), steps ascending) the row sums Σ_j into
 * rows[p, q, :] and, unless row[p] == col[p], the column sums Σ_i into cols[p, q, :]; the other entries are 0.
 * A block of R rows by W columns whose every squared distance is at least `cut` (the caller's cut-off radius²)
 * is skipped, as the caller skips whole tile pairs beyond it.
 * Points come as xt[tile index, coordinate, point] (each tile's coordinates transposed), tile a multiple of W.
 *
 * Distances are sums of squared differences (no cancellation, unlike ‖a‖² + ‖b‖² − 2a·b). Each block of R rows
 * by W columns keeps its distances in registers; GCC and Clang turn the vector types into the machine's SIMD. */
#include <float.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

/* W, the columns of a block, is the target's vector width, from the compiler's predefined macros: a block's R
 * distance vectors, a column vector and a product then fit the registers (16 on AVX2 and SSE). 16-float vectors
 * on AVX2 (two registers each) spilled a block's distances to the stack: 5x slower (issue 31). The width changes
 * which far blocks are skipped and the order of a row's lane sums, both within the stated error. */
#if defined(__AVX512F__)
#define W 16
#elif defined(__AVX__)
#define W 8
#else /* SSE2 (x86-64), NEON, and a generic fallback the compiler lowers to what it has */
#define W 4
#endif
#define R 8          /* rows a block */
#define MAX_SCALES 8
#define MAX_TILE 256

typedef float vf __attribute__((vector_size(W * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(W * sizeof(int32_t))));

static inline vf splat(float x) { return (vf){0} + x; }

/* 2^x for x ≤ 0 with Cephes exp2f's polynomial (relative error < 2e-7); exactly 0 below about 2^−126.5, where
 * float32 turns subnormal (a term that small is below 1e-38 of the point's own term 1). */
static inline vf exp2_neg(vf x) {
    vf floor_value = splat(-127.0f);
    vi low = x < floor_value; /* −1 in the lanes below the floor */
    vi xb, fb;
    memcpy(&xb, &x, sizeof x);
    memcpy(&fb, &floor_value, sizeof x);
    xb = (xb & ~low) | (fb & low);
    memcpy(&x, &xb, sizeof x);
    vi n = __builtin_convertvector(x - 0.5f, vi); /* nearest integer: x − 0.5 < 0 truncates upwards */
    vf f = x - __builtin_convertvector(n, vf);     /* in (−0.5, 0.5] */
    vf p = 1.535336188319500e-4f * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    vi bits = (n + 127) << 23; /* 2^n as a float; n = −127 gives 0 */
    vf scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Whether any lane of a comparison result (−1 or 0 a lane) is set. */
static inline int any_lane(vi m) {
#if defined(__AVX512F__) && W == 16
    __m512i v;
    memcpy(&v, &m, sizeof v);
    return _mm512_test_epi32_mask(v, v) != 0;
#elif defined(__AVX__) && W == 8
    __m256 v;
    memcpy(&v, &m, sizeof v);
    return !_mm256_testz_ps(v, v);
#elif defined(__SSE2__) && W == 4
    __m128 v;
    memcpy(&v, &m, sizeof v);
    return _mm_movemask_ps(v) != 0;
#elif defined(__ARM_NEON) && defined(__aarch64__) && W == 4
    uint32x4_t v;
    memcpy(&v, &m, sizeof v);
    return vmaxvq_u32(v) != 0;
#else
    int32_t any = 0;
    for (int l = 0; l < W; l++) any |= m[l];
    return any != 0;
#endif
}

/* Whether some pair of a block is nearer than `cut` (squared distance). */
static inline int any_near(const vf dist[R], float cut) {
    vi near = dist[0] < cut;
    for (int r = 1; r < R; r++) near |= dist[r] < cut;
    return any_lane(near);
}

static inline float lane_sum(vf v) {
    float s = 0.0f;
    for (int l = 0; l < W; l++) s += v[l];
    return s;
}

int tile_sums_limits(int64_t *w, int64_t *max_scales, int64_t *max_tile) {
    *w = W;
    *max_scales = MAX_SCALES;
    *max_tile = MAX_TILE;
    return 0;
}

void tile_pair_sums(const float *xt, int64_t d, int64_t tile, const int64_t *row, const int64_t *col,
                    const int32_t *n_need, int64_t n_pairs, float factor, float cut, const int32_t *steps,
                    int64_t n_scales, float *rows, float *cols) {
    vf col_acc[MAX_SCALES][MAX_TILE / W];
    const int64_t chunks = tile / W;
    for (int64_t p = 0; p < n_pairs; p++) {
        const float *a = xt + row[p] * d * tile, *b = xt + col[p] * d * tile;
        const int64_t need = n_need[p];
        for (int64_t q = 0; q < need; q++)
            for (int64_t c = 0; c < chunks; c++) col_acc[q][c] = splat(0.0f);
        float *out_rows = rows + p * n_scales * tile;
        for (int64_t i0 = 0; i0 < tile; i0 += R) {
            vf row_acc[R][MAX_SCALES];
            for (int r = 0; r < R; r++)
                for (int64_t q = 0; q < need; q++) row_acc[r][q] = splat(0.0f);
            for (int64_t c = 0; c < chunks; c++) {
                vf dist[R];
                for (int r = 0; r < R; r++) dist[r] = splat(0.0f);
                /* Coordinates come widest first: after 2, 4, 8, … of them a block whose every pair is already
                 * beyond the cut-off is skipped (a partial sum of squares only grows). */
                int64_t k = 0, check = 2;
                int far = 0;
                while (k < d) {
                    for (int64_t stop = check < d ? check : d; k < stop; k++) {
                        vf bk;
                        memcpy(&bk, b + k * tile + c * W, sizeof bk);
                        for (int r = 0; r < R; r++) {
                            vf t = bk - a[k * tile + i0 + r];
                            dist[r] += t * t;
                        }
                    }
                    check *= 2;
                    if (!any_near(dist, cut)) {
                        far = 1;
                        break;
                    }
                }
                if (far) continue;
                vf kern[R];
                for (int r = 0; r < R; r++) kern[r] = exp2_neg(factor * dist[r]);
                int32_t squared = 0;
                for (int64_t q = 0; q < need; q++) {
                    for (; squared < steps[q]; squared++)
                        for (int r = 0; r < R; r++) kern[r] *= kern[r];
                    vf block_cols = splat(0.0f);
                    for (int r = 0; r < R; r++) {
                        row_acc[r][q] += kern[r];
                        block_cols += kern[r];
                    }
                    col_acc[q][c] += block_cols;
                }
            }
            for (int r = 0; r < R; r++) {
                for (int64_t q = 0; q < need; q++) out_rows[q * tile + i0 + r] = lane_sum(row_acc[r][q]);
                for (int64_t q = need; q < n_scales; q++) out_rows[q * tile + i0 + r] = 0.0f;
            }
        }
        float *out_cols = cols + p * n_scales * tile;
        const int same = row[p] == col[p];
        for (int64_t q = 0; q < n_scales; q++)
            for (int64_t c = 0; c < chunks; c++)
                for (int l = 0; l < W; l++)
                    out_cols[q * tile + c * W + l] = (q < need && !same) ? col_acc[q][c][l] : 0.0f;
    }
}

/* Adds one tile_pair_sums call's sums into float64 accumulators [scales, tiles, tile]: acc_total[k, ri[p]] +=
 * rows[p, q] and acc_total[k, ci[p]] += cols[p, q] (k = scale_index[q]), and the same into acc_own (may be NULL)
 * where same[p] (both tiles of one class). Each scale's row sums go in pair order, then its column sums: the
 * order PyTorch's index_add_ took them in, so the sums are the same bit for bit; an entry the kernel left 0
 * (q >= n_need[p], or a pair not of one class for acc_own) is skipped, as adding +0 changes nothing. */
void add_pair_sums(const float *rows, const float *cols, const int64_t *ri, const int64_t *ci, const uint8_t *same,
                   const int32_t *n_need, int64_t n_pairs, int64_t n_scales, int64_t tile, const int64_t *scale_index,
                   int64_t acc_tiles, double *acc_total, double *acc_own) {
    for (int64_t q = 0; q < n_scales; q++) {
        double *total = acc_total + scale_index[q] * acc_tiles * tile;
        double *own = acc_own ? acc_own + scale_index[q] * acc_tiles * tile : NULL;
        for (int pass = 0; pass < 2; pass++) {
            const float *sums = pass ? cols : rows;
            const int64_t *at = pass ? ci : ri;
            for (int64_t p = 0; p < n_pairs; p++) {
                if (q >= n_need[p]) continue;
                const float *s = sums + (p * n_scales + q) * tile;
                double *t = total + at[p] * tile;
                for (int64_t j = 0; j < tile; j++) t[j] += (double)s[j];
                if (own && same[p]) {
                    double *o = own + at[p] * tile;
                    for (int64_t j = 0; j < tile; j++) o[j] += (double)s[j];
                }
            }
        }
    }
}

/* Reorders idx[lo, hi) so that its first k entries have the smallest keys (quickselect, median-of-three). */
static void select_smallest(int64_t *idx, const float *key, int64_t lo, int64_t hi, int64_t k) {
    while (k > 0 && k < hi - lo) {
        int64_t mid = lo + (hi - lo) / 2;
        float a = key[idx[lo]], b = key[idx[mid]], c = key[idx[hi - 1]];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t i = lo, j = hi - 1;
        while (i <= j) {
            while (key[idx[i]] < pivot) i++;
            while (key[idx[j]] > pivot) j--;
            if (i <= j) {
                int64_t t = idx[i];
                idx[i] = idx[j];
                idx[j] = t;
                i++;
                j--;
            }
        }
        if (lo + k <= j + 1) hi = j + 1;                 /* the boundary lies in the left part */
        else if (lo + k >= i) { k -= i - lo; lo = i; }   /* in the right part */
        else return;                                     /* among keys equal to the pivot */
    }
}

/* Splits the points [lo, hi) of one entry along the widest coordinate of their real points, at a multiple of
 * `unit` near the middle, and recurses: segments of several tiles split at tile boundaries, then each tile down
 * to groups of R points, so that the kernel's blocks of R rows hold near points too. key: a float a position. */
static void split(const float *x, const uint8_t *real, int64_t d, int64_t tile, int64_t lo, int64_t hi,
                  int64_t *idx, float *key) {
    int64_t unit = hi - lo > tile ? tile : R;
    if (hi - lo <= unit) return;
    int64_t widest = 0;
    float widest_span = -1.0f;
    for (int64_t k = 0; k < d; k++) {
        float mn = FLT_MAX, mx = -FLT_MAX;
        for (int64_t p = lo; p < hi; p++)
            if (real[idx[p]]) {
                float v = x[idx[p] * d + k];
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
            }
        if (mx - mn > widest_span) { widest_span = mx - mn; widest = k; }
    }
    for (int64_t p = lo; p < hi; p++) key[idx[p]] = real[idx[p]] ? x[idx[p] * d + widest] : FLT_MAX;
    int64_t mid = lo + (hi - lo) / unit / 2 * unit;
    select_smallest(idx, key, lo, hi, mid - lo);
    split(x, real, d, tile, lo, mid, idx, key);
    split(x, real, d, tile, mid, hi, idx, key);
}

/* k-d tree order of each entry's points (see kernel_tiles._tree_order, which does the same in PyTorch):
 * x [entries, positions, d] with |x| ≤ 1, real [positions] (0 for a dummy), spans [n_spans, 2] the tile range
 * of each class; order [entries, positions] receives the positions in tree order. key: positions floats. */
void tree_order(const float *x, const uint8_t *real, int64_t entries, int64_t n_pos, int64_t d, const int64_t *spans,
                int64_t n_spans, int64_t tile, int64_t *order, float *key) {
    for (int64_t e = 0; e < entries; e++) {
        int64_t *idx = order + e * n_pos;
        for (int64_t p = 0; p < n_pos; p++) idx[p] = p;
        for (int64_t s = 0; s < n_spans; s++)
            split(x + e * n_pos * d, real, d, tile, spans[2 * s] * tile, spans[2 * s + 1] * tile, idx, key);
    }
}
