// Block movements for the BlockCopy engine on the CPU (OpenMP): split, combine, transfer, block_pad, and
// upsample_into (a bilinear resize of padded blocks written straight into a map).
//
// Maps are N x C x H x W tensors, contiguous in NCHW or channels_last (NHWC); packed blocks are B x C x b x b
// in the same layout (rows contiguous; a cropped view is fine). A block is named by its linear index
// n * gh * gw + gy * gw + gx (int64 tensor); block_pos maps each block to its row in the packed blocks or -1.
// Copies move whole rows with memcpy (a row of b pixels in NCHW, of b * C values in NHWC), so every dtype
// works; block_pad's fill value is converted to float32, float16 or bfloat16.
#include <torch/extension.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace {

struct Layout {
  int64_t n, c, h, w;
  bool nhwc;
};

Layout layout_of(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 4, name, " must be 4-D (N x C x H x W), got ", t.dim(), "-D");
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  bool nchw = t.is_contiguous();
  bool nhwc = !nchw && t.is_contiguous(at::MemoryFormat::ChannelsLast);
  TORCH_CHECK(nchw || nhwc, name, " must be contiguous (NCHW or channels_last)");
  return {t.size(0), t.size(1), t.size(2), t.size(3), nhwc};
}

// Block indices as a vector; with allow_skip, negative entries mean "skip this block".
std::vector<int64_t> indices(const at::Tensor& idx, int64_t num_blocks, bool allow_skip = false) {
  TORCH_CHECK(idx.dim() == 1 && idx.scalar_type() == at::kLong, "block indices must be a 1-D int64 tensor");
  auto c = idx.to(at::kCPU).contiguous();
  std::vector<int64_t> out(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  for (int64_t i : out) {
    TORCH_CHECK((i >= 0 || allow_skip) && i < num_blocks, "block index ", i, " outside [0, ", num_blocks, ")");
  }
  return out;
}

// Offsets of packed blocks' rows: strides of a B x C x b x b tensor whose rows are contiguous in the map's layout.
struct BlockStrides {
  int64_t s0, s1, s2;
};

BlockStrides block_strides(const at::Tensor& blocks, const Layout& d, int64_t b, int64_t count) {
  TORCH_CHECK(blocks.dim() == 4 && blocks.device().is_cpu(), "blocks must be a 4-D CPU tensor");
  TORCH_CHECK(blocks.size(0) == count && blocks.size(1) == d.c && blocks.size(2) == b && blocks.size(3) == b,
              "blocks must be ", count, " x ", d.c, " x ", b, " x ", b);
  // rows must be contiguous in the map's layout (a cropped view is fine): NCHW pixels, NHWC pixels x channels
  const bool rows_ok = d.nhwc ? (blocks.stride(1) == 1 || d.c == 1) && (blocks.stride(3) == d.c || b == 1)
                              : (blocks.stride(3) == 1 || b == 1);
  TORCH_CHECK(rows_ok, "blocks and map must share the memory format (rows contiguous)");
  return {blocks.stride(0), blocks.stride(1), blocks.stride(2)};
}

// Copies block rows between a map (N x C x H x W) and packed blocks (B x C x b x b, rows contiguous);
// to_other picks the direction. With other_is_map, `other` is a second map of the same shape (transfer).
// border > 0 moves only each block's frame of that width (its first and last `border` rows and columns).
void move_blocks(const at::Tensor& dense, const at::Tensor& other, const std::vector<int64_t>& ids, int64_t b,
                 bool other_is_map, bool to_other, int64_t border = 0) {
  Layout d = layout_of(dense, "map");
  TORCH_CHECK(d.h % b == 0 && d.w % b == 0, "block size ", b, " does not divide the map size ", d.h, "x", d.w);
  TORCH_CHECK(other.scalar_type() == dense.scalar_type(), "blocks and map must share the dtype");
  BlockStrides bst{0, 0, 0};
  if (other_is_map) {
    TORCH_CHECK(other.sizes() == dense.sizes(), "both maps must have the same shape");
    TORCH_CHECK(other.is_contiguous(d.nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous),
                "both maps must share the memory format");
  } else {
    bst = block_strides(other, d, b, (int64_t)ids.size());
  }
  const int64_t gh = d.h / b, gw = d.w / b, es = dense.element_size();
  char* dp = static_cast<char*>(dense.data_ptr());
  char* op = static_cast<char*>(other.data_ptr());
  const int64_t nb = ids.size();
  // a "row" is b contiguous pixels: per (block, channel, y) in NCHW, per (block, y) with all channels in NHWC
  const int64_t planes = d.nhwc ? 1 : d.c;
  const int64_t pixel_bytes = (d.nhwc ? d.c : 1) * es;
  const int64_t row_bytes = b * pixel_bytes;
  const int64_t rows = nb * planes * b;
  const bool frame_only = border > 0 && 2 * border < b;  // else the frame is the whole block
  const int64_t edge_bytes = border * pixel_bytes;
#pragma omp parallel for if (rows * (frame_only ? 2 * edge_bytes : row_bytes) > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t m = r / (planes * b), c = (r / b) % planes, y = r % b;
    const int64_t id = ids[m];
    if (id < 0) continue;
    const int64_t n = id / (gh * gw), gy = (id / gw) % gh, gx = id % gw;
    const int64_t my = gy * b + y, mx = gx * b;
    const int64_t map_off = d.nhwc ? ((n * d.h + my) * d.w + mx) * d.c : ((n * d.c + c) * d.h + my) * d.w + mx;
    const int64_t other_off = other_is_map ? map_off : m * bst.s0 + c * bst.s1 + y * bst.s2;
    char* map_row = dp + map_off * es;
    char* other_row = op + other_off * es;
    char* to = to_other ? other_row : map_row;
    const char* from = to_other ? map_row : other_row;
    if (frame_only && y >= border && y < b - border) {  // an inner row: its two edge segments
      std::memcpy(to, from, edge_bytes);
      std::memcpy(to + row_bytes - edge_bytes, from + row_bytes - edge_bytes, edge_bytes);
    } else {
      std::memcpy(to, from, row_bytes);
    }
  }
}

// One output row of a padded block: pixels [x0, x0 + pw) of map row y, each block column's segment taken from
// this frame's packed blocks when that block executed (pos >= 0), else from the stale map.
template <typename scalar_t>
void pad_rows(const at::Tensor& blocks, const int64_t* pos, const at::Tensor& stale, at::Tensor& out,
              const std::vector<int64_t>& ids, int64_t b, int64_t top, int64_t left, bool replicate, scalar_t value) {
  Layout d = layout_of(stale, "stale map");
  const BlockStrides bst = block_strides(blocks, d, b, blocks.size(0));
  const int64_t gh = d.h / b, gw = d.w / b;
  const int64_t ph = out.size(2), pw = out.size(3);
  const int64_t planes = d.nhwc ? 1 : d.c, px = d.nhwc ? d.c : 1;  // values per pixel in a row
  const scalar_t* src = stale.data_ptr<scalar_t>();
  const scalar_t* cur = blocks.data_ptr<scalar_t>();
  scalar_t* dst = out.data_ptr<scalar_t>();
  const int64_t rows = (int64_t)ids.size() * planes * ph;
#pragma omp parallel for if (rows * pw * px > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t m = r / (planes * ph), c = (r / ph) % planes, i = r % ph;
    const int64_t id = ids[m], n = id / (gh * gw), gy = (id / gw) % gh, gx = id % gw;
    scalar_t* orow = dst + (d.nhwc ? (m * ph + i) * pw * d.c : ((m * d.c + c) * ph + i) * pw);
    int64_t y = gy * b - top + i;
    if (y < 0 || y >= d.h) {
      if (!replicate) {
        std::fill(orow, orow + pw * px, value);
        continue;
      }
      y = std::min(std::max(y, int64_t(0)), d.h - 1);
    }
    const scalar_t* stale_row = src + (d.nhwc ? (n * d.h + y) * d.w * d.c : ((n * d.c + c) * d.h + y) * d.w);
    const int64_t x0 = gx * b - left;
    const int64_t lo = std::max(int64_t(0), -x0), hi = std::min(pw, d.w - x0);  // in-map columns [lo, hi)
    for (int64_t j = lo; j < hi;) {  // one segment per block column
      const int64_t x = x0 + j, cx = x / b, end = std::min(hi, (cx + 1) * b - x0);
      const int64_t p = pos[(n * gh + y / b) * gw + cx];
      const scalar_t* from = p >= 0 ? cur + p * bst.s0 + c * bst.s1 + (y % b) * bst.s2 + (x - cx * b) * px
                                    : stale_row + x * px;
      std::memcpy(orow + j * px, from, (end - j) * px * sizeof(scalar_t));
      j = end;
    }
    for (int64_t j = 0; j < lo; ++j) {
      if (replicate) std::memcpy(orow + j * px, orow + lo * px, px * sizeof(scalar_t));
      else std::fill(orow + j * px, orow + (j + 1) * px, value);
    }
    for (int64_t j = hi; j < pw; ++j) {
      if (replicate) std::memcpy(orow + j * px, orow + (hi - 1) * px, px * sizeof(scalar_t));
      else std::fill(orow + j * px, orow + (j + 1) * px, value);
    }
  }
}

// Source pixel and weights of each output pixel of a bilinear resize by `factor` (align_corners=False), as
// PyTorch computes them, for the block's own `side` outputs of a padded block of `padded` pixels a side whose
// first `factor` outputs (those of the 1-pixel halo) are skipped.
struct Taps {
  std::vector<int64_t> lo, hi;
  std::vector<float> w_lo, w_hi;
};

Taps bilinear_taps(int64_t padded, int64_t factor, int64_t side) {
  const float scale = static_cast<float>(padded) / static_cast<float>(padded * factor);
  Taps t{std::vector<int64_t>(side), std::vector<int64_t>(side), std::vector<float>(side), std::vector<float>(side)};
  for (int64_t o = 0; o < side; ++o) {
    const float src = std::max(scale * (static_cast<float>(o + factor) + 0.5f) - 0.5f, 0.0f);
    const int64_t lo = static_cast<int64_t>(src);
    t.lo[o] = lo;
    t.hi[o] = lo + (lo < padded - 1 ? 1 : 0);
    t.w_hi[o] = src - static_cast<float>(lo);
    t.w_lo[o] = 1.0f - t.w_hi[o];
  }
  return t;
}

// Bilinear resize of each padded block (B x C x p x p, channels_last) by `factor`, cropped to the block's own
// (p - 2) * factor outputs a side, written into the channels_last map at the block's index (negative: skip).
// Separably, per output row: the two source rows blended into a float row, then that row resized along x, all
// channels of a pixel at once. (In NCHW a pixel's taps are single values: PyTorch's resize is faster there.)
template <typename scalar_t>
void upsample_rows(const at::Tensor& padded, at::Tensor& dense, const std::vector<int64_t>& ids, int64_t factor) {
  const Layout d = layout_of(dense, "map");
  const int64_t p = padded.size(2), side = (p - 2) * factor, c = d.c;
  const int64_t gh = d.h / side, gw = d.w / side;
  const Taps t = bilinear_taps(p, factor, side);
  const scalar_t* in = padded.data_ptr<scalar_t>();
  scalar_t* out = dense.data_ptr<scalar_t>();
  const int64_t rows = (int64_t)ids.size() * side;
#pragma omp parallel if (rows * side * c > 16384)
  {
    std::vector<float> blend(p * c);
#pragma omp for
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t m = r / side, y = r % side, id = ids[m];
      if (id < 0) continue;
      const int64_t n = id / (gh * gw), gy = (id / gw) % gh, gx = id % gw;
      const scalar_t* row_lo = in + (m * p + t.lo[y]) * p * c;
      const scalar_t* row_hi = in + (m * p + t.hi[y]) * p * c;
      const float h_lo = t.w_lo[y], h_hi = t.w_hi[y];
      for (int64_t k = 0; k < p * c; ++k) {
        blend[k] = h_lo * static_cast<float>(row_lo[k]) + h_hi * static_cast<float>(row_hi[k]);
      }
      scalar_t* orow = out + ((n * d.h + gy * side + y) * d.w + gx * side) * c;
      for (int64_t x = 0; x < side; ++x) {
        const float* a = blend.data() + t.lo[x] * c;
        const float* b = blend.data() + t.hi[x] * c;
        const float w_lo = t.w_lo[x], w_hi = t.w_hi[x];
        scalar_t* o = orow + x * c;
        for (int64_t k = 0; k < c; ++k) o[k] = static_cast<scalar_t>(w_lo * a[k] + w_hi * b[k]);
      }
    }
  }
}

}  // namespace

at::Tensor split(const at::Tensor& dense, const at::Tensor& idx, int64_t block) {
  Layout d = layout_of(dense, "map");
  TORCH_CHECK(block > 0 && d.h % block == 0 && d.w % block == 0, "block size ", block,
              " does not divide the map size ", d.h, "x", d.w);
  auto ids = indices(idx, d.n * (d.h / block) * (d.w / block));
  auto out = at::empty({(int64_t)ids.size(), d.c, block, block}, dense.options(),
                       d.nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  move_blocks(dense, out, ids, block, false, true);
  return out;
}

void combine(const at::Tensor& blocks, const at::Tensor& idx, at::Tensor dense, int64_t border) {
  Layout d = layout_of(dense, "map");
  const int64_t b = blocks.size(-1);
  TORCH_CHECK(b > 0 && d.h % b == 0 && d.w % b == 0, "block size ", b, " does not divide the map size ", d.h, "x", d.w);
  TORCH_CHECK(border >= 0, "border must be >= 0, got ", border);
  auto ids = indices(idx, d.n * (d.h / b) * (d.w / b), true);
  move_blocks(dense, blocks, ids, b, false, false, border);
}

void transfer(const at::Tensor& src, at::Tensor dst, const at::Tensor& idx, int64_t block) {
  Layout d = layout_of(dst, "destination map");
  TORCH_CHECK(block > 0 && d.h % block == 0 && d.w % block == 0, "block size ", block,
              " does not divide the map size ", d.h, "x", d.w);
  auto ids = indices(idx, d.n * (d.h / block) * (d.w / block));
  move_blocks(dst, src, ids, block, true, false);
}

at::Tensor block_pad(const at::Tensor& blocks, const at::Tensor& block_pos, const at::Tensor& stale,
                     const at::Tensor& idx, std::vector<int64_t> halo, bool replicate, double value,
                     c10::optional<at::Tensor> out_buffer) {
  Layout d = layout_of(stale, "stale map");
  const int64_t block = blocks.size(-1);
  TORCH_CHECK(halo.size() == 4, "halo must be (top, bottom, left, right)");
  for (int64_t p : halo) TORCH_CHECK(p >= 0, "halo sizes must be >= 0");
  TORCH_CHECK(block > 0 && d.h % block == 0 && d.w % block == 0, "block size ", block,
              " does not divide the map size ", d.h, "x", d.w);
  TORCH_CHECK(blocks.scalar_type() == stale.scalar_type(), "blocks and stale map must share the dtype");
  const int64_t num_blocks = d.n * (d.h / block) * (d.w / block);
  auto ids = indices(idx, num_blocks);
  auto pos = block_pos.to(at::kCPU).contiguous();
  TORCH_CHECK(pos.dim() == 1 && pos.scalar_type() == at::kLong && pos.numel() == num_blocks,
              "block_pos must be an int64 tensor with one entry per block (", num_blocks, ")");
  const int64_t* pp = pos.data_ptr<int64_t>();
  for (int64_t j = 0; j < num_blocks; ++j) {
    TORCH_CHECK(pp[j] < blocks.size(0), "block_pos entry ", pp[j], " outside the ", blocks.size(0), " blocks");
  }
  const auto fmt = d.nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const std::vector<int64_t> shape{(int64_t)ids.size(), d.c, block + halo[0] + halo[1], block + halo[2] + halo[3]};
  at::Tensor out;
  if (out_buffer.has_value()) {  // a buffer kept across frames: no fresh pages to fault in
    out = *out_buffer;
    TORCH_CHECK(out.sizes() == at::IntArrayRef(shape) && out.scalar_type() == stale.scalar_type() &&
                    out.device().is_cpu() && out.is_contiguous(fmt),
                "out must be a ", shape, " tensor in the stale map's dtype and memory format");
  } else {
    out = at::empty(shape, stale.options(), fmt);
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, stale.scalar_type(), "block_pad", [&] {
    pad_rows<scalar_t>(blocks, pp, stale, out, ids, block, halo[0], halo[2], replicate, static_cast<scalar_t>(value));
  });
  return out;
}

void upsample_into(const at::Tensor& padded, int64_t factor, const at::Tensor& idx, at::Tensor dense) {
  Layout d = layout_of(dense, "map");
  TORCH_CHECK(factor >= 1, "factor must be >= 1, got ", factor);
  TORCH_CHECK(padded.dim() == 4 && padded.device().is_cpu() && padded.size(1) == d.c && padded.size(2) > 2 &&
                  padded.size(3) == padded.size(2),
              "padded blocks must be a CPU tensor B x ", d.c, " x p x p with p > 2");
  const auto cl = at::MemoryFormat::ChannelsLast;
  TORCH_CHECK(dense.is_contiguous(cl) && padded.is_contiguous(cl),
              "upsample_into takes a channels_last map and channels_last padded blocks");
  TORCH_CHECK(padded.scalar_type() == dense.scalar_type(), "padded blocks and map must share the dtype");
  const int64_t side = (padded.size(2) - 2) * factor;
  TORCH_CHECK(d.h % side == 0 && d.w % side == 0, "upsampled block size ", side, " does not divide the map size ",
              d.h, "x", d.w);
  auto ids = indices(idx, d.n * (d.h / side) * (d.w / side), true);
  TORCH_CHECK((int64_t)ids.size() == padded.size(0), "one block index per padded block (", padded.size(0), ")");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dense.scalar_type(), "upsample_into", [&] {
    upsample_rows<scalar_t>(padded, dense, ids, factor);
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("split", &split, "packed blocks idx of a map (B x C x b x b)");
  m.def("combine", &combine, "write packed blocks into a map in place (negative indices skip; border > 0: only "
        "each block's frame of that width)", py::arg("blocks"), py::arg("idx"), py::arg("dense"), py::arg("border") = 0);
  m.def("transfer", &transfer, "copy blocks idx from src into dst in place");
  m.def("block_pad", &block_pad, "blocks idx with a (top, bottom, left, right) halo from current and stale blocks",
        py::arg("blocks"), py::arg("block_pos"), py::arg("stale"), py::arg("idx"), py::arg("halo"), py::arg("replicate"),
        py::arg("value"), py::arg("out") = py::none());
  m.def("upsample_into", &upsample_into, "bilinear resize (align_corners=False) of blocks padded by 1 pixel, "
        "cropped to the blocks and written into a map in place (negative indices skip)");
}
