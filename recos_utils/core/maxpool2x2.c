/* LeNet-5's 2x2 max pooling (S2, S4; Chapter 1) for training on the CPU, bit for bit as
 * PyTorch's CPU kernel (max_pool2d_with_indices and its backward), about 3x faster for
 * LeNet-5's maps. Compiled and loaded by recos_utils/core/fastpool.py, which falls back to
 * PyTorch's kernel where no C compiler is found; tests/test_fastpool.py checks the bits.
 *
 * Plain C, no Python or PyTorch headers: built with `cc -O3 -shared -fPIC` in well under a
 * second. Never build it with -ffast-math: NaN tests and the sign of zero matter here.
 */
#include <stdint.h>
#include <string.h>

/* One 2x2 window, scanned as PyTorch's kernel scans it: (0,0), (0,1), (1,0), (1,1). A value
 * replaces the running maximum if it is larger or NaN, so the first maximum wins a tie and
 * the last NaN wins; `code` is the winner's place (0..3). Branch-free, so loops vectorise. */
#define WINDOW(v0, v1, v2, v3, out, code) do {                                   \
    float m_ = (v0); uint8_t k_ = 0; int t_;                                     \
    t_ = ((v1) > m_) | ((v1) != (v1)); m_ = t_ ? (v1) : m_; k_ = t_ ? 1 : k_;    \
    t_ = ((v2) > m_) | ((v2) != (v2)); m_ = t_ ? (v2) : m_; k_ = t_ ? 2 : k_;    \
    t_ = ((v3) > m_) | ((v3) != (v3)); m_ = t_ ? (v3) : m_; k_ = t_ ? 3 : k_;    \
    (out) = m_; (code) = k_;                                                     \
} while (0)

/* s, or +0.0 (all bits clear) when `on` is 0: a select the compiler vectorises. */
static inline float keep_if(float s, int on) {
    uint32_t b;
    memcpy(&b, &s, 4);
    b &= -(uint32_t)on;
    memcpy(&s, &b, 4);
    return s;
}

/* The kernel's backward adds each window's gradient to a zeroed map at the winner's place:
 * 0 + g (so -0 becomes +0) there, +0 at the other three places. */
#define SPREAD(g, k, p0, p1, p2, p3) do {                                        \
    const float s_ = 0.0f + (g); const int k_ = (k);                             \
    (p0) = keep_if(s_, k_ == 0); (p1) = keep_if(s_, k_ == 1);                    \
    (p2) = keep_if(s_, k_ == 2); (p3) = keep_if(s_, k_ == 3);                    \
} while (0)

/* Channels last: a map row is W pixels of CC channels; the window's four pixels are CC
 * apart along a row and W*CC apart between rows. CC is a constant for LeNet-5's 6 and 16
 * channels so that the channel loop unrolls. */
#define CL_FORWARD(CC)                                                           \
    for (int64_t r = 0; r < N * OH; r++) for (int64_t j = 0; j < OW; j++) {      \
        const float *a = x + (2 * r * W + 2 * j) * (CC), *b = a + W * (CC);      \
        float *o = out + (r * OW + j) * (CC);                                    \
        uint8_t *k = code + (r * OW + j) * (CC);                                 \
        for (int64_t c = 0; c < (CC); c++)                                       \
            WINDOW(a[c], a[(CC) + c], b[c], b[(CC) + c], o[c], k[c]);            \
    }

#define CL_BACKWARD(CC)                                                          \
    for (int64_t r = 0; r < N * OH; r++) for (int64_t j = 0; j < OW; j++) {      \
        float *a = gin + (2 * r * W + 2 * j) * (CC), *b = a + W * (CC);          \
        const float *g = grad + (r * OW + j) * (CC);                             \
        const uint8_t *k = code + (r * OW + j) * (CC);                           \
        for (int64_t c = 0; c < (CC); c++)                                       \
            SPREAD(g[c], k[c], a[c], a[(CC) + c], b[c], b[(CC) + c]);            \
    }

/* x: N x C x H x W float32, dense in the contiguous (channels_last == 0) or channels-last
 * layout, H and W even; out (float32) and code (uint8): N x C x H/2 x W/2 in x's layout. */
void maxpool2x2_forward(const float *restrict x, float *restrict out,
                        uint8_t *restrict code, int64_t N, int64_t C, int64_t H,
                        int64_t W, int channels_last) {
    const int64_t OH = H / 2, OW = W / 2;
    if (!channels_last) {
        for (int64_t r = 0; r < N * C * OH; r++) {
            const float *a = x + 2 * r * W, *b = a + W;
            float *o = out + r * OW;
            uint8_t *k = code + r * OW;
            for (int64_t j = 0; j < OW; j++)
                WINDOW(a[2 * j], a[2 * j + 1], b[2 * j], b[2 * j + 1], o[j], k[j]);
        }
    } else if (C == 6) {
        CL_FORWARD(6)
    } else if (C == 16) {
        CL_FORWARD(16)
    } else {
        CL_FORWARD(C)
    }
}

/* grad and code: N x C x H/2 x W/2 in x's layout; gin: N x C x H x W in x's layout, every
 * element written. */
void maxpool2x2_backward(const float *restrict grad, const uint8_t *restrict code,
                         float *restrict gin, int64_t N, int64_t C, int64_t H, int64_t W,
                         int channels_last) {
    const int64_t OH = H / 2, OW = W / 2;
    if (!channels_last) {
        for (int64_t r = 0; r < N * C * OH; r++) {
            float *a = gin + 2 * r * W, *b = a + W;
            const float *g = grad + r * OW;
            const uint8_t *k = code + r * OW;
            for (int64_t j = 0; j < OW; j++)
                SPREAD(g[j], k[j], a[2 * j], a[2 * j + 1], b[2 * j], b[2 * j + 1]);
        }
    } else if (C == 6) {
        CL_BACKWARD(6)
    } else if (C == 16) {
        CL_BACKWARD(16)
    } else {
        CL_BACKWARD(C)
    }
}
