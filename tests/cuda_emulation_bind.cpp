// The CUDA binding's functions (blockcopy_cuda_bind.cpp) on CPU tensors, calling the launchers of the emulated
// .cu (cuda_emulation.py): the layout is chosen and the blocks allocated as there; the index-error flag is a
// host int. A template: cuda_emulation.py fills in the launchers' declarations.
#include <torch/extension.h>

#include <cstring>
#include <vector>

typedef void* cudaStream_t;
// @LAUNCHERS@ (the launchers as blockcopy_cuda_bind.cpp declares them)

namespace {

int index_error = 0;

bool is_nhwc(const at::Tensor& t) {
  if (t.is_contiguous()) return false;
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), "tensors must be contiguous (NCHW or channels_last)");
  return true;
}

at::MemoryFormat format_of(bool nhwc) { return nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous; }

void check_blocks(const at::Tensor& blocks, bool nhwc) {
  TORCH_CHECK(blocks.numel() == 0 || blocks.is_contiguous(format_of(nhwc)), "blocks and map must share the layout");
}

void launched(int err) { TORCH_CHECK(err == 0, "launch failed: ", err); }

}  // namespace

at::Tensor split(const at::Tensor& dense, const at::Tensor& idx, int64_t block) {
  const bool nhwc = is_nhwc(dense);
  auto out = at::empty({idx.numel(), dense.size(1), block, block}, dense.options(), format_of(nhwc));
  launched(blockcopy_cuda_move(dense.data_ptr(), out.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(), dense.size(0),
                               dense.size(1), dense.size(2), dense.size(3), block, nhwc, true, 0,
                               dense.element_size(), &index_error, nullptr));
  return out;
}

void combine(const at::Tensor& blocks, const at::Tensor& idx, at::Tensor dense, int64_t border) {
  const bool nhwc = is_nhwc(dense);
  check_blocks(blocks, nhwc);
  launched(blockcopy_cuda_move(dense.data_ptr(), blocks.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                               dense.size(0), dense.size(1), dense.size(2), dense.size(3), blocks.size(-1), nhwc,
                               false, border, dense.element_size(), &index_error, nullptr));
}

void transfer(const at::Tensor& src, at::Tensor dst, const at::Tensor& idx, int64_t block) {
  const bool nhwc = is_nhwc(dst);
  launched(blockcopy_cuda_transfer(src.data_ptr(), dst.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(), dst.size(0),
                                   dst.size(1), dst.size(2), dst.size(3), block, nhwc, dst.element_size(),
                                   &index_error, nullptr));
}

at::Tensor block_pad(const at::Tensor& blocks, const at::Tensor& block_pos, const at::Tensor& stale,
                     const at::Tensor& idx, std::vector<int64_t> halo, bool replicate, double value) {
  const bool nhwc = is_nhwc(stale);
  check_blocks(blocks, nhwc);
  const int64_t block = blocks.size(-1);
  uint64_t bits = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, stale.scalar_type(), "block_pad_value", [&] {
    const scalar_t v = static_cast<scalar_t>(value);
    std::memcpy(&bits, &v, sizeof(scalar_t));
  });
  auto out = at::empty({idx.numel(), stale.size(1), block + halo[0] + halo[1], block + halo[2] + halo[3]},
                       stale.options(), format_of(nhwc));
  launched(blockcopy_cuda_block_pad(blocks.data_ptr(), block_pos.data_ptr<int64_t>(), blocks.size(0),
                                    stale.data_ptr(), out.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                                    stale.size(0), stale.size(1), stale.size(2), stale.size(3), block, halo[0],
                                    halo[1], halo[2], halo[3], nhwc, replicate, bits, stale.element_size(),
                                    &index_error, nullptr));
  return out;
}

int64_t take_index_error() {
  const int64_t error = index_error;
  index_error = 0;
  return error;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("split", &split);
  m.def("combine", &combine, py::arg("blocks"), py::arg("idx"), py::arg("dense"), py::arg("border") = 0);
  m.def("transfer", &transfer);
  m.def("block_pad", &block_pad);
  m.def("take_index_error", &take_index_error);
}
