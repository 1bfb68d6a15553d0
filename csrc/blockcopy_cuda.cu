// Block movements for the BlockCopy engine on CUDA: split, combine, transfer, block_pad.
//
// Same contract as blockcopy_cpu.cpp: maps N x C x H x W and packed blocks B x C x b x b, both NCHW or both
// channels_last (NHWC), blocks named by int64 linear index n * gh * gw + gy * gw + gx (on the device;
// combine skips negative ones), block_pos giving each block's row in the packed blocks or -1.
// channels_last maps move by rows (a CUDA block per row of a block, its threads on consecutive values); NCHW
// ones one thread per value, with 32-bit index arithmetic where it fits. Values are moved as raw 1/2/4/8-byte
// words, so every dtype works (float32, float16, bfloat16, ...); block_pad's fill value arrives as the bit
// pattern of the value in that dtype.
// Indices are checked on the device: an index outside the map (or a block_pos entry outside the packed blocks)
// moves nothing and sets *error, which the binding reads once per frame instead of syncing per movement.
// This file needs only the CUDA runtime (no torch headers), so it compiles with a bare `nvcc -c`;
// blockcopy_cuda_bind.cpp checks the tensors and calls the launchers below.
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

namespace {

// Sizes and positions in index type I: int32_t where every tensor a launch touches has fewer than 2^31 values
// (the usual case: 32-bit division is several times cheaper than 64-bit on a GPU, and these kernels are
// bound by their index arithmetic), int64_t otherwise.
template <typename I>
struct Geometry {
  I c, h, w;      // map channels and size
  I gh, gw, b;    // grid and block size
  I ph, pw;       // packed block size (b, or b plus halo)
  I top, left;    // halo before the block
  I num_blocks;   // n * gh * gw: valid block indices are [0, num_blocks)
  bool nhwc;
};

// (block m, channel, row, col) of value e of a packed tensor B x C x ph x pw in the given layout
template <typename I>
__device__ inline void unravel(I e, const Geometry<I>& g, I& m, I& c, I& i, I& j) {
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

template <typename I>
__device__ inline I map_offset(const Geometry<I>& g, I n, I c, I y, I x) {
  return g.nhwc ? ((n * g.h + y) * g.w + x) * g.c + c : ((n * g.c + c) * g.h + y) * g.w + x;
}

// Offset of value (c, y, x) of block p in packed blocks B x C x b x b.
template <typename I>
__device__ inline I block_offset(const Geometry<I>& g, I p, I c, I y, I x) {
  return g.nhwc ? ((p * g.b + y) * g.b + x) * g.c + c : ((p * g.c + c) * g.b + y) * g.b + x;
}

// The image n and grid position (gy, gx) of block index id.
template <typename I>
__device__ inline void block_origin(I id, const Geometry<I>& g, I& n, I& gy, I& gx) {
  n = id / (g.gh * g.gw);
  gy = (id / g.gw) % g.gh;
  gx = id % g.gw;
}

// Whether block index id is inside the map; flags it in *error when it is not.
template <typename I>
__device__ inline bool valid_block(int64_t id, const Geometry<I>& g, int* error) {
  if (id >= 0 && id < static_cast<int64_t>(g.num_blocks)) return true;
  atomicOr(error, 1);
  return false;
}

// The thread's value index, or -1 past the end.
template <typename I>
__device__ inline I value_index(I total) {
  const int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  return e < static_cast<int64_t>(total) ? static_cast<I>(e) : I(-1);
}

// border > 0: only the values in each block's frame of that width move (the inner ones stay).
template <typename T, typename I>
__global__ void move_kernel(T* map, T* packed, const int64_t* ids, I total, Geometry<I> g, bool to_packed,
                            bool allow_skip, I border, int* error) {
  const I e = value_index(total);
  if (e < 0) return;
  I m, c, i, j;
  unravel(e, g, m, c, i, j);
  if (border > 0 && i >= border && i < g.b - border && j >= border && j < g.b - border) return;
  const int64_t id = ids[m];
  if (id < 0 && allow_skip) return;  // combine skips negative indices
  if (!valid_block(id, g, error)) return;
  I n, gy, gx;
  block_origin(static_cast<I>(id), g, n, gy, gx);
  const I off = map_offset(g, n, c, gy * g.b + i, gx * g.b + j);
  if (to_packed) packed[e] = map[off];
  else map[off] = packed[e];
}

template <typename T, typename I>
__global__ void transfer_kernel(const T* src, T* dst, const int64_t* ids, I total, Geometry<I> g, int* error) {
  const I e = value_index(total);
  if (e < 0) return;
  I m, c, i, j;
  unravel(e, g, m, c, i, j);
  const int64_t id = ids[m];
  if (!valid_block(id, g, error)) return;
  I n, gy, gx;
  block_origin(static_cast<I>(id), g, n, gy, gx);
  const I off = map_offset(g, n, c, gy * g.b + i, gx * g.b + j);
  dst[off] = src[off];
}

// Value (block m, c, i, j) of a padded block: the map pixel it stands for comes from this frame's packed
// blocks when its block executed (pos >= 0), else from the stale map; outside the map `value` or the edge.
template <typename T, typename I>
__global__ void pad_kernel(const T* blocks, const int64_t* pos, int64_t num_packed, const T* stale, T* out,
                           const int64_t* ids, I total, Geometry<I> g, bool replicate, T value, int* error) {
  const I e = value_index(total);
  if (e < 0) return;
  I m, c, i, j;
  unravel(e, g, m, c, i, j);
  const int64_t id = ids[m];
  if (!valid_block(id, g, error)) return;
  I n, gy, gx;
  block_origin(static_cast<I>(id), g, n, gy, gx);
  I y = gy * g.b - g.top + i, x = gx * g.b - g.left + j;
  const bool inside = y >= 0 && y < g.h && x >= 0 && x < g.w;
  if (!inside && !replicate) {
    out[e] = value;
    return;
  }
  y = y < 0 ? 0 : (y >= g.h ? g.h - 1 : y);
  x = x < 0 ? 0 : (x >= g.w ? g.w - 1 : x);
  const int64_t p64 = pos[(n * g.gh + y / g.b) * g.gw + x / g.b];
  if (p64 >= num_packed) {
    atomicOr(error, 2);
    return;
  }
  if (p64 < 0) {
    out[e] = stale[map_offset(g, n, c, y, x)];
    return;
  }
  out[e] = blocks[block_offset(g, static_cast<I>(p64), c, y % g.b, x % g.b)];
}

// channels_last (NHWC): a block's row of b pixels is b * C consecutive values in the map and in the packed
// blocks, so a CUDA block moves whole rows, its threads on consecutive values (coalesced), and the block and row
// arithmetic is done once per row instead of once per value. Row r of the packed blocks is block r / b, row r % b.
template <typename T>
__global__ void move_rows_kernel(T* map, T* packed, const int64_t* ids, int64_t rows, Geometry<int64_t> g,
                                 bool to_packed, bool allow_skip, int64_t border, int* error) {
  const int64_t len = g.b * g.c, edge = border * g.c;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t m = r / g.b, y = r % g.b, id = ids[m];
    if (id < 0 && allow_skip) continue;  // combine skips negative indices
    if (!valid_block(id, g, error)) continue;
    int64_t n, gy, gx;
    block_origin(id, g, n, gy, gx);
    T* map_row = map + map_offset(g, n, int64_t{0}, gy * g.b + y, gx * g.b);
    T* packed_row = packed + r * len;
    // border > 0: an inner row of the block moves only its two edge segments of `border` pixels
    const bool inner = border > 0 && y >= border && y < g.b - border;
    const int64_t count = inner ? 2 * edge : len;
    for (int64_t t = threadIdx.x; t < count; t += blockDim.x) {
      const int64_t k = inner && t >= edge ? len - 2 * edge + t : t;
      if (to_packed) packed_row[k] = map_row[k];
      else map_row[k] = packed_row[k];
    }
  }
}

template <typename T>
__global__ void transfer_rows_kernel(const T* src, T* dst, const int64_t* ids, int64_t rows, Geometry<int64_t> g,
                                     int* error) {
  const int64_t len = g.b * g.c;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t m = r / g.b, y = r % g.b, id = ids[m];
    if (!valid_block(id, g, error)) continue;
    int64_t n, gy, gx;
    block_origin(id, g, n, gy, gx);
    const int64_t off = map_offset(g, n, int64_t{0}, gy * g.b + y, gx * g.b);
    for (int64_t k = threadIdx.x; k < len; k += blockDim.x) dst[off + k] = src[off + k];
  }
}

// Padded row r (block r / ph, row r % ph): threadIdx.y walks its pixels, threadIdx.x a pixel's channels; each
// pixel comes from this frame's packed blocks when its block executed, else from the stale map.
template <typename T>
__global__ void pad_rows_kernel(const T* blocks, const int64_t* pos, int64_t num_packed, const T* stale, T* out,
                                const int64_t* ids, int64_t rows, Geometry<int64_t> g, bool replicate, T value,
                                int* error) {
  const int b = static_cast<int>(g.b), w = static_cast<int>(g.w), pw = static_cast<int>(g.pw);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t m = r / g.ph, i = r % g.ph, id = ids[m];
    if (!valid_block(id, g, error)) continue;
    int64_t n, gy, gx;
    block_origin(id, g, n, gy, gx);
    T* out_row = out + r * g.pw * g.c;
    int64_t y = gy * g.b - g.top + i;
    if ((y < 0 || y >= g.h) && !replicate) {
      for (int64_t k = threadIdx.y * blockDim.x + threadIdx.x; k < g.pw * g.c; k += blockDim.x * blockDim.y) {
        out_row[k] = value;
      }
      continue;
    }
    y = y < 0 ? 0 : (y >= g.h ? g.h - 1 : y);
    const int64_t* pos_row = pos + (n * g.gh + y / g.b) * g.gw;
    const int64_t by = y % g.b;
    const int x0 = static_cast<int>(gx * g.b - g.left);
    for (int j = threadIdx.y; j < pw; j += blockDim.y) {
      T* dst = out_row + static_cast<int64_t>(j) * g.c;
      int x = x0 + j;
      if ((x < 0 || x >= w) && !replicate) {
        for (int64_t c = threadIdx.x; c < g.c; c += blockDim.x) dst[c] = value;
        continue;
      }
      x = x < 0 ? 0 : (x >= w ? w - 1 : x);
      const int64_t p = pos_row[x / b];
      if (p >= num_packed) {
        atomicOr(error, 2);
        continue;
      }
      const T* src = p < 0 ? stale + map_offset(g, n, int64_t{0}, y, int64_t{x})
                           : blocks + block_offset(g, p, int64_t{0}, by, int64_t{x % b});
      for (int64_t c = threadIdx.x; c < g.c; c += blockDim.x) dst[c] = src[c];
    }
  }
}

constexpr int kThreads = 256;
constexpr int kRowThreads = 128;        // threads of a row kernel's block
constexpr int kPadChannelThreads = 32;  // of them, on a padded pixel's channels (the rest on its pixels)

inline unsigned int blocks_for(int64_t total) { return (unsigned int)((total + kThreads - 1) / kThreads); }

constexpr int64_t kMaxRowBlocks = 1 << 20;  // the row kernels loop when there are more rows

inline unsigned int row_blocks(int64_t rows) { return (unsigned int)(rows < kMaxRowBlocks ? rows : kMaxRowBlocks); }

// Whether every count is below 2^31, so that int32 indices cover the tensors of a launch.
inline bool fits_int32(std::initializer_list<int64_t> counts) {
  for (const int64_t count : counts) {
    if (count > INT32_MAX) return false;
  }
  return true;
}

template <typename I>
Geometry<I> geometry(int64_t n, int64_t c, int64_t h, int64_t w, int64_t b, int64_t top, int64_t bottom,
                     int64_t left, int64_t right, bool nhwc) {
  return {I(c), I(h), I(w), I(h / b), I(w / b), I(b), I(b + top + bottom), I(b + left + right), I(top), I(left),
          I(n * (h / b) * (w / b)), nhwc};
}

// Calls f(T{}, I{}) with the unsigned word type T of `size` bytes and the index type I (int32_t when `small`);
// false for another size.
template <typename F>
bool by_word(int size, bool small, F&& f) {
  auto with_index = [&](auto word) {
    if (small) f(word, int32_t{});
    else f(word, int64_t{});
  };
  switch (size) {
    case 1: with_index(uint8_t{}); return true;
    case 2: with_index(uint16_t{}); return true;
    case 4: with_index(uint32_t{}); return true;
    case 8: with_index(uint64_t{}); return true;
    default: return false;
  }
}

int finish(bool launched) { return launched ? (int)cudaGetLastError() : (int)cudaErrorInvalidValue; }

}  // namespace

// elem_size: bytes per value (1, 2, 4 or 8). Each returns cudaGetLastError() as an int (0 = success);
// *error (device memory) gets bit 1 for a block index outside the map, bit 2 for a block_pos entry outside
// the packed blocks. border (combine): > 0 moves only each block's frame of that width.
int blockcopy_cuda_move(void* map, void* packed, const int64_t* ids, int64_t nb, int64_t n, int64_t c, int64_t h,
                        int64_t w, int64_t b, bool nhwc, bool to_packed, int64_t border, int elem_size, int* error,
                        cudaStream_t stream) {
  const int64_t total = nb * c * b * b;
  if (total == 0) return 0;
  if (nhwc) {
    return finish(by_word(elem_size, false, [&](auto word, auto) {
      using T = decltype(word);
      move_rows_kernel<T><<<row_blocks(nb * b), kRowThreads, 0, stream>>>(
          static_cast<T*>(map), static_cast<T*>(packed), ids, nb * b,
          geometry<int64_t>(n, c, h, w, b, 0, 0, 0, 0, true), to_packed, !to_packed, border, error);
    }));
  }
  return finish(by_word(elem_size, fits_int32({total, n * c * h * w}), [&](auto word, auto index) {
    using T = decltype(word);
    using I = decltype(index);
    move_kernel<T, I><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<T*>(map), static_cast<T*>(packed), ids, I(total), geometry<I>(n, c, h, w, b, 0, 0, 0, 0, nhwc),
        to_packed, !to_packed, I(border), error);
  }));
}

int blockcopy_cuda_transfer(const void* src, void* dst, const int64_t* ids, int64_t nb, int64_t n, int64_t c,
                            int64_t h, int64_t w, int64_t b, bool nhwc, int elem_size, int* error,
                            cudaStream_t stream) {
  const int64_t total = nb * c * b * b;
  if (total == 0) return 0;
  if (nhwc) {
    return finish(by_word(elem_size, false, [&](auto word, auto) {
      using T = decltype(word);
      transfer_rows_kernel<T><<<row_blocks(nb * b), kRowThreads, 0, stream>>>(
          static_cast<const T*>(src), static_cast<T*>(dst), ids, nb * b,
          geometry<int64_t>(n, c, h, w, b, 0, 0, 0, 0, true), error);
    }));
  }
  return finish(by_word(elem_size, fits_int32({total, n * c * h * w}), [&](auto word, auto index) {
    using T = decltype(word);
    using I = decltype(index);
    transfer_kernel<T, I><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<const T*>(src), static_cast<T*>(dst), ids, I(total),
        geometry<I>(n, c, h, w, b, 0, 0, 0, 0, nhwc), error);
  }));
}

int blockcopy_cuda_block_pad(const void* blocks, const int64_t* pos, int64_t num_packed, const void* stale, void* out,
                             const int64_t* ids, int64_t nb, int64_t n, int64_t c, int64_t h, int64_t w, int64_t b,
                             int64_t top, int64_t bottom, int64_t left, int64_t right, bool nhwc, bool replicate,
                             uint64_t value_bits, int elem_size, int* error, cudaStream_t stream) {
  const int64_t total = nb * c * (b + top + bottom) * (b + left + right);
  if (total == 0) return 0;
  if (nhwc) {
    const int64_t rows = nb * (b + top + bottom);
    return finish(by_word(elem_size, false, [&](auto word, auto) {
      using T = decltype(word);
      const T value = static_cast<T>(value_bits);  // the low sizeof(T) bytes: the value's bit pattern
      pad_rows_kernel<T><<<row_blocks(rows), dim3(kPadChannelThreads, kRowThreads / kPadChannelThreads), 0, stream>>>(
          static_cast<const T*>(blocks), pos, num_packed, static_cast<const T*>(stale), static_cast<T*>(out), ids,
          rows, geometry<int64_t>(n, c, h, w, b, top, bottom, left, right, true), replicate, value, error);
    }));
  }
  const bool small = fits_int32({total, n * c * h * w, num_packed * c * b * b});
  return finish(by_word(elem_size, small, [&](auto word, auto index) {
    using T = decltype(word);
    using I = decltype(index);
    const T value = static_cast<T>(value_bits);  // the low sizeof(T) bytes: the value's bit pattern
    pad_kernel<T, I><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<const T*>(blocks), pos, num_packed, static_cast<const T*>(stale), static_cast<T*>(out), ids,
        I(total), geometry<I>(n, c, h, w, b, top, bottom, left, right, nhwc), replicate, value, error);
  }));
}
