// Block movements for the BlockCopy engine on CUDA (float32, float16): split, combine, transfer, block_pad.
//
// Same contract as blockcopy_cpu.cpp: maps N x C x H x W and packed blocks B x C x b x b, both NCHW or both
// channels_last (NHWC), blocks named by int64 linear index n * gh * gw + gy * gw + gx (on the device;
// combine skips negative ones), block_pos giving each block's row in the packed blocks or -1.
// One thread per moved value. This file needs only the CUDA runtime (no torch headers), so it compiles with a
// bare `nvcc -c`; blockcopy_cuda_bind.cpp checks the tensors and calls the launchers below.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace {

struct Geometry {
  int64_t c, h, w;      // map channels and size
  int64_t gh, gw, b;    // grid and block size
  int64_t ph, pw;       // packed block size (b, or b plus halo)
  int64_t top, left;    // halo before the block
  bool nhwc;
};

// (block m, channel, row, col) of value e of a packed tensor B x C x ph x pw in the given layout
__device__ inline void unravel(int64_t e, const Geometry& g, int64_t& m, int64_t& c, int64_t& i, int64_t& j) {
  if (g.nhwc) {
    c = e % g.c; e /= g.c;
    j = e % g.pw; e /= g.pw;
    i = e % g.ph; m = e / g.ph;
  } else {
    j = e % g.pw; e /= g.pw;
    i = e % g.ph; e /= g.ph;
    c = e % g.c; m = e / g.c;
  }
}

__device__ inline int64_t map_offset(const Geometry& g, int64_t n, int64_t c, int64_t y, int64_t x) {
  return g.nhwc ? ((n * g.h + y) * g.w + x) * g.c + c : ((n * g.c + c) * g.h + y) * g.w + x;
}

template <typename T>
__global__ void move_kernel(T* map, T* packed, const int64_t* ids, int64_t total, Geometry g, bool to_packed) {
  int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (e >= total) return;
  int64_t m, c, i, j;
  unravel(e, g, m, c, i, j);
  const int64_t id = ids[m];
  if (id < 0) return;  // combine skips negative indices
  const int64_t n = id / (g.gh * g.gw), gy = (id / g.gw) % g.gh, gx = id % g.gw;
  const int64_t off = map_offset(g, n, c, gy * g.b + i, gx * g.b + j);
  if (to_packed) packed[e] = map[off];
  else map[off] = packed[e];
}

template <typename T>
__global__ void transfer_kernel(const T* src, T* dst, const int64_t* ids, int64_t total, Geometry g) {
  int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (e >= total) return;
  int64_t m, c, i, j;
  unravel(e, g, m, c, i, j);
  const int64_t id = ids[m], n = id / (g.gh * g.gw), gy = (id / g.gw) % g.gh, gx = id % g.gw;
  const int64_t off = map_offset(g, n, c, gy * g.b + i, gx * g.b + j);
  dst[off] = src[off];
}

// Value (block m, c, i, j) of a padded block: the map pixel it stands for comes from this frame's packed
// blocks when its block executed (pos >= 0), else from the stale map; outside the map `value` or the edge.
template <typename T>
__global__ void pad_kernel(const T* blocks, const int64_t* pos, const T* stale, T* out, const int64_t* ids,
                           int64_t total, Geometry g, bool replicate, T value) {
  int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (e >= total) return;
  int64_t m, c, i, j;
  unravel(e, g, m, c, i, j);
  const int64_t id = ids[m], n = id / (g.gh * g.gw), gy = (id / g.gw) % g.gh, gx = id % g.gw;
  int64_t y = gy * g.b - g.top + i, x = gx * g.b - g.left + j;
  const bool inside = y >= 0 && y < g.h && x >= 0 && x < g.w;
  if (!inside && !replicate) {
    out[e] = value;
    return;
  }
  y = y < 0 ? 0 : (y >= g.h ? g.h - 1 : y);
  x = x < 0 ? 0 : (x >= g.w ? g.w - 1 : x);
  const int64_t p = pos[(n * g.gh + y / g.b) * g.gw + x / g.b];
  if (p < 0) {
    out[e] = stale[map_offset(g, n, c, y, x)];
    return;
  }
  const int64_t by = y % g.b, bx = x % g.b;
  out[e] = blocks[g.nhwc ? ((p * g.b + by) * g.b + bx) * g.c + c : ((p * g.c + c) * g.b + by) * g.b + bx];
}

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t total) { return (unsigned int)((total + kThreads - 1) / kThreads); }

Geometry geometry(int64_t c, int64_t h, int64_t w, int64_t b, int64_t top, int64_t bottom, int64_t left,
                  int64_t right, bool nhwc) {
  return {c, h, w, h / b, w / b, b, b + top + bottom, b + left + right, top, left, nhwc};
}

template <typename T>
void move(void* map, void* packed, const int64_t* ids, int64_t nb, int64_t c, int64_t h, int64_t w, int64_t b,
          bool nhwc, bool to_packed, cudaStream_t stream) {
  Geometry g = geometry(c, h, w, b, 0, 0, 0, 0, nhwc);
  const int64_t total = nb * c * b * b;
  if (total == 0) return;
  move_kernel<T><<<blocks_for(total), kThreads, 0, stream>>>(static_cast<T*>(map), static_cast<T*>(packed), ids,
                                                             total, g, to_packed);
}

}  // namespace

// dtype: 0 = float32, 1 = float16. Each returns cudaGetLastError() as an int (0 = success).
int blockcopy_cuda_move(void* map, void* packed, const int64_t* ids, int64_t nb, int64_t c, int64_t h, int64_t w,
                        int64_t b, bool nhwc, bool to_packed, int dtype, cudaStream_t stream) {
  if (dtype == 0) move<float>(map, packed, ids, nb, c, h, w, b, nhwc, to_packed, stream);
  else move<__half>(map, packed, ids, nb, c, h, w, b, nhwc, to_packed, stream);
  return (int)cudaGetLastError();
}

int blockcopy_cuda_transfer(const void* src, void* dst, const int64_t* ids, int64_t nb, int64_t c, int64_t h,
                            int64_t w, int64_t b, bool nhwc, int dtype, cudaStream_t stream) {
  Geometry g = geometry(c, h, w, b, 0, 0, 0, 0, nhwc);
  const int64_t total = nb * c * b * b;
  if (total == 0) return 0;
  if (dtype == 0) {
    transfer_kernel<float><<<blocks_for(total), kThreads, 0, stream>>>(static_cast<const float*>(src),
                                                                        static_cast<float*>(dst), ids, total, g);
  } else {
    transfer_kernel<__half><<<blocks_for(total), kThreads, 0, stream>>>(static_cast<const __half*>(src),
                                                                         static_cast<__half*>(dst), ids, total, g);
  }
  return (int)cudaGetLastError();
}

int blockcopy_cuda_block_pad(const void* blocks, const int64_t* pos, const void* stale, void* out, const int64_t* ids,
                             int64_t nb, int64_t c, int64_t h, int64_t w, int64_t b, int64_t top, int64_t bottom,
                             int64_t left, int64_t right, bool nhwc, bool replicate, float value, int dtype,
                             cudaStream_t stream) {
  Geometry g = geometry(c, h, w, b, top, bottom, left, right, nhwc);
  const int64_t total = nb * c * g.ph * g.pw;
  if (total == 0) return 0;
  if (dtype == 0) {
    pad_kernel<float><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<const float*>(blocks), pos, static_cast<const float*>(stale), static_cast<float*>(out), ids, total,
        g, replicate, value);
  } else {
    pad_kernel<__half><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<const __half*>(blocks), pos, static_cast<const __half*>(stale), static_cast<__half*>(out), ids,
        total, g, replicate, __float2half(value));
  }
  return (int)cudaGetLastError();
}
