/* One training step of a batched MLP (BatchedMLP): every seed's gradient of its own mean cross-entropy,
 * in one call, for narrow networks where PyTorch spends most of a step between its operations.
 *
 * Every sum is written out in a fixed order (64 lane partials over the batch, then a fixed tree) and the
 * build keeps IEEE arithmetic (no -ffast-math, -ffp-contract=off), so a seed's gradients are the same bits
 * whatever the vector width it was built for (SSE, AVX2, AVX-512, NEON: VW below) and however many seeds run
 * beside it. The width and the register blocking follow the target, because vectors wider than the machine's
 * are lowered piecewise and blocking sized for AVX-512's 32 registers spills on AVX2's 16 (issue 31: 0.58x
 * PyTorch's step on an AVX2 EPYC with 64-byte vectors everywhere). exp (Cephes) and tanh (Eigen's rational approximation) are single-precision approximations within a few
 * ulp, written here so that they do not depend on the C library.
 *
 * Layout, as the engine keeps it: inputs feature-major x[d_in][N], labels y[N], each seed's epoch order
 * order[S][n] (indices into the N points), weights w_l[S][in][out], biases b_l[S][1][out]; gradients are
 * written to gw_l, gb_l of the same shapes. The batch is positions [start, stop) of the epoch's order; it is
 * padded with zero gradients to a multiple of LANES.
 */
#include <stdint.h>
#include <string.h>

#define LANES 64 /* a batch chunk: the 64 lane partials every batch sum is split into */
#define MAX_LAYERS 32 /* compiled_step.MAX_LAYERS */

/* The target's vector unit, from the compiler's predefined macros: VW floats a vector, and GV vectors a lane group
 * in the blocked loops below, so that BLOCK x GV accumulators, the rows, a broadcast weight and a product fit the
 * registers (AVX-512 and NEON: 32; AVX/AVX2 and SSE: 16). Neither changes any sum's order: a lane's own sum is
 * the same whichever vector holds it and whichever lanes run beside it. */
#if defined(__AVX512F__)
#define VW 16
#define GV 4
#elif defined(__AVX__)
#define VW 8
#define GV 2
#elif defined(__ARM_NEON) || defined(__aarch64__)
#define VW 4
#define GV 4
#else /* SSE2-only x86-64, and a generic fallback the compiler lowers to what it has */
#define VW 4
#define GV 2
#endif
#define GL (GV * VW) /* lanes a group; divides LANES */

enum { ACT_LINEAR = 0, ACT_TANH = 1, ACT_RELU = 2 };

/* GCC/Clang vector extensions of the target's own width: per-lane IEEE operations. */
typedef float vf __attribute__((vector_size(VW * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VW * sizeof(int32_t))));

static inline vf splat(float a) { return a - (vf){0}; } /* a - (+0) is a, -0 and NaN included */
static inline vf sel(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }
static inline vf load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* Cephes expf on x clamped to [-87, 88]; a NaN stays NaN. */
static inline vf exp_v(vf x) {
    x = sel(x > 88.0f, splat(88.0f), x);
    x = sel(x < -87.0f, splat(-87.0f), x);
    vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)e;
}

/* Eigen 3.4's rational tanh (odd degree-13 over even degree-6 polynomial on x clamped to +-7.9053, x itself
 * below 4e-4): within a few ulp, one division and no exp. */
static inline vf tanh_v(vf x) {
    vf a = sel(x < 0.0f, -x, x);
    vf c = sel(x > 7.90531110763549805f, splat(7.90531110763549805f), x);
    c = sel(c < -7.90531110763549805f, splat(-7.90531110763549805f), c);
    vf z = c * c;
    vf p = splat(-2.76076847742355e-16f);
    p = p * z + 2.00018790482477e-13f;
    p = p * z + -8.60467152213735e-11f;
    p = p * z + 5.12229709037114e-08f;
    p = p * z + 1.48572235717979e-05f;
    p = p * z + 6.37261928875436e-04f;
    p = p * z + 4.89352455891786e-03f;
    p = p * c;
    vf q = splat(1.19825839466702e-06f);
    q = q * z + 1.18534705686654e-04f;
    q = q * z + 2.26843463243900e-03f;
    q = q * z + 4.89352518554385e-03f;
    return sel(a < 0.0004f, x, p / q);
}

/* The kernels below work on blocks of up to 4 outputs (or inputs) at a time, so that a row loaded once serves
 * four of them; a block changes which sums run side by side, never any sum's own order. */
#define BLOCK 4

/* A batch sum's fixed tree over its 64 lane partials P (P[l] sums the batch entries b = l mod 64, in order):
 * the 16 sums (P[l] + P[l+16]) + (P[l+32] + P[l+48]), then halves added pairwise (8, 4, 2, 1). */
static inline float lanes_total(const float *restrict P) {
    float part[16];
    for (int l = 0; l < 16; l++) part[l] = (P[l] + P[l + 16]) + (P[l + 32] + P[l + 48]);
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) part[l] += part[l + w];
    return part[0];
}

/* g[o] = sum over b of u[b] * v_o[b] for the ob rows v_o = v + o * bp (o < ob), bp a multiple of LANES: one lane
 * group at a time, each lane summing its entries b = lane mod 64 in order, then lanes_total. */
static inline void dots(const float *restrict u, const float *restrict v, int64_t bp, float *restrict g, const int ob) {
    float part[BLOCK][LANES];
    for (int g0 = 0; g0 < LANES; g0 += GL) {
        vf acc[BLOCK][GV];
#pragma GCC unroll 16
        for (int j = 0; j < ob; j++)
#pragma GCC unroll 16
            for (int q = 0; q < GV; q++) acc[j][q] = splat(0.0f);
        for (int64_t k = g0; k < bp; k += LANES) {
            vf uk[GV];
#pragma GCC unroll 16
            for (int q = 0; q < GV; q++) uk[q] = load(u + k + q * VW);
#pragma GCC unroll 16
            for (int j = 0; j < ob; j++)
#pragma GCC unroll 16
                for (int q = 0; q < GV; q++) acc[j][q] += uk[q] * load(v + j * bp + k + q * VW);
        }
#pragma GCC unroll 16
        for (int j = 0; j < ob; j++)
#pragma GCC unroll 16
            for (int q = 0; q < GV; q++) store(part[j] + g0 + q * VW, acc[j][q]);
    }
    for (int j = 0; j < ob; j++) g[j] = lanes_total(part[j]);
}

/* The same sums of v's own entries (bias gradients). */
static float total(const float *restrict v, int64_t bp) {
    float part[LANES];
    for (int g0 = 0; g0 < LANES; g0 += GL) {
        vf acc[GV];
#pragma GCC unroll 16
        for (int q = 0; q < GV; q++) acc[q] = splat(0.0f);
        for (int64_t k = g0; k < bp; k += LANES)
#pragma GCC unroll 16
            for (int q = 0; q < GV; q++) acc[q] += load(v + k + q * VW);
#pragma GCC unroll 16
        for (int q = 0; q < GV; q++) store(part + g0 + q * VW, acc[q]);
    }
    return lanes_total(part);
}

/* out[o][b] = sum over i (ascending) of m[i][o] * in[i][b], for the ob rows o0 … o0 + ob − 1 of out; m is
 * n_in × n_out with row stride m_stride and column stride m_step (a weight matrix or its transpose). Then
 * out = f(out): + bias[o] (forward) or × act'(s[o][b]) (backward), s the activation's output. Each lane's sum is
 * its own, so a lane group of GL at a time. */
static inline void mix_block(const float *restrict m, int64_t m_stride, int64_t m_step, const float *restrict in,
                             float *restrict out, const float *restrict bias, const float *restrict s, int act,
                             int64_t n_in, int64_t bp, int64_t o0, const int ob) {
    for (int64_t b0 = 0; b0 < bp; b0 += GL) {
        vf acc[BLOCK][GV];
#pragma GCC unroll 16
        for (int j = 0; j < ob; j++)
#pragma GCC unroll 16
            for (int q = 0; q < GV; q++) acc[j][q] = splat(0.0f);
        for (int64_t i = 0; i < n_in; i++) {
            const float *row = in + i * bp + b0, *mi = m + i * m_stride + o0 * m_step;
            vf r[GV];
#pragma GCC unroll 16
            for (int q = 0; q < GV; q++) r[q] = load(row + q * VW);
#pragma GCC unroll 16
            for (int j = 0; j < ob; j++) {
                const vf wj = splat(mi[j * m_step]);
#pragma GCC unroll 16
                for (int q = 0; q < GV; q++) acc[j][q] += wj * r[q];
            }
        }
#pragma GCC unroll 16
        for (int j = 0; j < ob; j++) {
            float *dst = out + (o0 + j) * bp + b0;
            const float *sj = s ? s + (o0 + j) * bp + b0 : NULL;
#pragma GCC unroll 16
            for (int q = 0; q < GV; q++) {
                vf v = acc[j][q];
                if (bias) {
                    v = v + bias[o0 + j];
                } else if (act == ACT_TANH) {
                    const vf sv = load(sj + q * VW);
                    v = v * (1.0f - sv * sv);
                } else if (act == ACT_RELU) {
                    v = sel(load(sj + q * VW) > 0.0f, v, splat(0.0f));
                }
                store(dst + q * VW, v);
            }
        }
    }
}

static void mix(const float *m, int64_t m_stride, int64_t m_step, const float *in, float *out, const float *bias,
                const float *s, int act, int64_t n_in, int64_t n_out, int64_t bp) {
    for (int64_t o0 = 0; o0 < n_out; o0 += BLOCK) {
        switch (n_out - o0 >= BLOCK ? BLOCK : n_out - o0) {  /* constant block sizes: unrolled, in registers */
        case 4: mix_block(m, m_stride, m_step, in, out, bias, s, act, n_in, bp, o0, 4); break;
        case 3: mix_block(m, m_stride, m_step, in, out, bias, s, act, n_in, bp, o0, 3); break;
        case 2: mix_block(m, m_stride, m_step, in, out, bias, s, act, n_in, bp, o0, 2); break;
        default: mix_block(m, m_stride, m_step, in, out, bias, s, act, n_in, bp, o0, 1); break;
        }
    }
}

/* Forward: out[o][b] = (sum_i w[i][o] * in[i][b], i ascending) + bias[o]. */
static void dense(const float *w, const float *bias, const float *in, float *out, int64_t n_in, int64_t n_out,
                  int64_t bp) {
    mix(w, n_out, 1, in, out, bias, NULL, ACT_LINEAR, n_in, n_out, bp);
}

/* Backward: din[i][b] = (sum_o w[i][o] * dz[o][b], o ascending) * act'(s[i][b]), s the activation's output. */
static void back(const float *w, const float *dz, const float *s, float *din, int64_t n_in, int64_t n_out,
                 int64_t bp, int act) {
    mix(w, 1, n_out, dz, din, NULL, s, act, n_out, n_in, bp);
}

/* Weight gradient: gw[i][o] = sum_b t[i][b] * dz[o][b]. */
static void weight_grad(const float *t, const float *dz, float *gw, int64_t n_in, int64_t n_out, int64_t bp) {
    for (int64_t i = 0; i < n_in; i++)
        for (int64_t o0 = 0; o0 < n_out; o0 += BLOCK) {
            const float *u = t + i * bp, *v = dz + o0 * bp;
            float *g = gw + i * n_out + o0;
            switch (n_out - o0 >= BLOCK ? BLOCK : n_out - o0) {
            case 4: dots(u, v, bp, g, 4); break;
            case 3: dots(u, v, bp, g, 3); break;
            case 2: dots(u, v, bp, g, 2); break;
            default: dots(u, v, bp, g, 1); break;
            }
        }
}

static void activate(float *restrict z, int64_t n, int act) {
    for (int64_t k = 0; k < n; k += VW) {
        vf v = load(z + k);
        if (act == ACT_TANH) v = tanh_v(v);
        else if (act == ACT_RELU) v = sel(v < 0.0f, splat(0.0f), v);
        store(z + k, v);
    }
}

/* d(mean cross-entropy)/d logits into dz [c][bp]: p_k / B for k != y and -(sum of the others' p) / B for y,
 * which avoids p_y - 1's cancellation when the fit is good; zero in the padding columns (y = -1 there). */
static void loss_grad(const float *restrict z, const int32_t *restrict y, float *restrict dz, int64_t c, int64_t batch,
                      int64_t bp) {
    const float n = (float)batch;
    for (int64_t b = 0; b < bp; b += VW) {
        vf m = load(z + b), total = {0}, others = {0};
        for (int64_t k = 1; k < c; k++) {
            vf zk = load(z + k * bp + b);
            m = sel(zk > m, zk, m);
        }
        for (int64_t k = 0; k < c; k++) {
            vf e = exp_v(load(z + k * bp + b) - m);
            store(dz + k * bp + b, e);
            total += e;
        }
        vi label, live;
        memcpy(&label, y + b, sizeof label);
        live = label >= 0;
        for (int64_t k = 0; k < c; k++) {
            vf p = load(dz + k * bp + b) / total;
            vi is_label = label == (int32_t)k;
            others += sel(is_label, splat(0.0f), p);
            store(dz + k * bp + b, sel(live, p / n, splat(0.0f)));
        }
        for (int64_t k = 0; k < c; k++) {
            vi is_label = label == (int32_t)k;
            store(dz + k * bp + b, sel(is_label & live, -others / n, load(dz + k * bp + b)));
        }
    }
}

static int64_t padded(int64_t batch) { return (batch + LANES - 1) / LANES * LANES; }

static int64_t widest(int64_t n_layers, const int64_t *sizes) {
    int64_t w = 0;
    for (int64_t l = 0; l <= n_layers; l++) w = sizes[l] > w ? sizes[l] : w;
    return w;
}

/* Floats of working memory mlp_step needs for a batch (its layers' activations, two gradient rows, the labels). */
int64_t mlp_step_work(int64_t n_layers, const int64_t *sizes, int64_t batch) {
    int64_t all_widths = 0;
    for (int64_t l = 0; l <= n_layers; l++) all_widths += sizes[l];
    return (2 * all_widths + 2 * widest(n_layers, sizes) + 1) * padded(batch);
}

/* One step for seeds [s0, s1).
 * sizes[0..n_layers]: d_in, hidden widths, classes. w, b, gw, gb: n_layers pointers each. noise: NULL, or
 * n_layers - 1 pointers to [S][h_l][batch] standard normals (T_l = S_l + beta * noise). work: mlp_step_work
 * floats, reused from call to call. Returns 0, or -1 if the sizes are out of range or work is too small. */
int mlp_step(int64_t s0, int64_t s1, int64_t n_layers, const int64_t *sizes,
             const float *x, const int64_t *y, int64_t n_points, const int64_t *order, int64_t n,
             int64_t start, int64_t stop,
             const float *const *w, const float *const *b, float *const *gw, float *const *gb,
             int act, float beta, const float *const *noise, float *work, int64_t work_size) {
    if (n_layers < 1 || n_layers > MAX_LAYERS || stop <= start || work_size < mlp_step_work(n_layers, sizes, stop - start))
        return -1;
    const int64_t batch = stop - start, bp = padded(batch);
    const int64_t row = widest(n_layers, sizes) * bp;  /* one gradient buffer */
    /* per layer l: its input t_l [sizes[l]][bp] (t_0 = x; with noise, T_l beside S_l) and output s_l */
    float *t[MAX_LAYERS + 1], *s[MAX_LAYERS + 1];
    float *cursor = work;
    for (int64_t l = 0; l <= n_layers; l++) {
        s[l] = cursor;  cursor += sizes[l] * bp;  /* s[0] unused; s[l] = output of layer l - 1 (1-based) */
        t[l] = cursor;  cursor += sizes[l] * bp;
    }
    float *dz = cursor, *dz_prev = cursor + row;
    int32_t *labels = (int32_t *)(cursor + 2 * row);  /* bp of them: a float's size each */
    const int noisy = beta > 0.0f && noise;
    for (int64_t l = 1; l <= n_layers && !noisy; l++) t[l] = s[l];  /* noiseless: T_l is S_l */

    for (int64_t seed = s0; seed < s1; seed++) {
        const int64_t d_in = sizes[0], *points = order + seed * n + start;
        for (int64_t i = 0; i < d_in; i++) {
            const float *row = x + i * n_points;
            float *dst = t[0] + i * bp;
            int64_t k = 0;
            for (; k + 4 <= batch; k += 4) {  /* by hand: GCC kept one element a turn, its bound on the stack */
                dst[k] = row[points[k]];
                dst[k + 1] = row[points[k + 1]];
                dst[k + 2] = row[points[k + 2]];
                dst[k + 3] = row[points[k + 3]];
            }
            for (; k < batch; k++) dst[k] = row[points[k]];
            for (; k < bp; k++) dst[k] = 0.0f;
        }
        for (int64_t k = 0; k < batch; k++) labels[k] = (int32_t)y[points[k]];
        for (int64_t k = batch; k < bp; k++) labels[k] = -1;
        /* forward: s[l+1] = act(t[l] W_l + b_l); t[l+1] = s[l+1] (+ beta * noise) */
        for (int64_t l = 0; l < n_layers; l++) {
            const int64_t n_in = sizes[l], n_out = sizes[l + 1];
            const float *wl = w[l] + seed * n_in * n_out, *bl = b[l] + seed * n_out;
            dense(wl, bl, t[l], s[l + 1], n_in, n_out, bp);
            if (l == n_layers - 1) break;
            activate(s[l + 1], n_out * bp, act);
            if (noisy) {
                const float *eps = noise[l] + seed * n_out * batch;
                for (int64_t o = 0; o < n_out; o++) {
                    for (int64_t k = 0; k < batch; k++)
                        t[l + 1][o * bp + k] = s[l + 1][o * bp + k] + beta * eps[o * batch + k];
                    for (int64_t k = batch; k < bp; k++) t[l + 1][o * bp + k] = s[l + 1][o * bp + k];
                }
            }
        }
        loss_grad(s[n_layers], labels, dz, sizes[n_layers], batch, bp);
        /* backward */
        for (int64_t l = n_layers - 1; l >= 0; l--) {
            const int64_t n_in = sizes[l], n_out = sizes[l + 1];
            float *gwl = gw[l] + seed * n_in * n_out, *gbl = gb[l] + seed * n_out;
            weight_grad(t[l], dz, gwl, n_in, n_out, bp);
            for (int64_t o = 0; o < n_out; o++) gbl[o] = total(dz + o * bp, bp);
            if (l == 0) break;
            back(w[l] + seed * n_in * n_out, dz, s[l], dz_prev, n_in, n_out, bp, act);
            float *swap = dz; dz = dz_prev; dz_prev = swap;
        }
    }
    return 0;
}
