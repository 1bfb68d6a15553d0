// Python bindings of the CUDA block movements (blockcopy_cuda.cu): tensor checks, allocation, stream.
// Same functions and contract as blockcopy_cpu.cpp, for float32 and float16 CUDA tensors.
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

#include <vector>

int blockcopy_cuda_move(void* map, void* packed, const int64_t* ids, int64_t nb, int64_t c, int64_t h, int64_t w,
                        int64_t b, bool nhwc, bool to_packed, int dtype, cudaStream_t stream);
int blockcopy_cuda_transfer(const void* src, void* dst, const int64_t* ids, int64_t nb, int64_t c, int64_t h,
                            int64_t w, int64_t b, bool nhwc, int dtype, cudaStream_t stream);
int blockcopy_cuda_block_pad(const void* blocks, const int64_t* pos, const void* stale, void* out, const int64_t* ids,
                             int64_t nb, int64_t c, int64_t h, int64_t w, int64_t b, int64_t top, int64_t bottom,
                             int64_t left, int64_t right, bool nhwc, bool replicate, float value, int dtype,
                             cudaStream_t stream);

namespace {

bool is_nhwc(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 4 && t.is_cuda(), name, " must be a 4-D CUDA tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kHalf, name, " must be float32 or float16");
  if (t.is_contiguous()) return false;
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), name, " must be contiguous (NCHW or channels_last)");
  return true;
}

int dtype_code(const at::Tensor& t) { return t.scalar_type() == at::kFloat ? 0 : 1; }

void check_indices(const at::Tensor& idx, const at::Tensor& map, int64_t block, bool allow_skip = false) {
  TORCH_CHECK(idx.dim() == 1 && idx.scalar_type() == at::kLong && idx.device() == map.device() && idx.is_contiguous(),
              "block indices must be a contiguous 1-D int64 tensor on the map's device");
  TORCH_CHECK(block > 0 && map.size(2) % block == 0 && map.size(3) % block == 0, "block size ", block,
              " does not divide the map size ", map.size(2), "x", map.size(3));
  if (idx.numel() > 0) {
    const int64_t num_blocks = map.size(0) * (map.size(2) / block) * (map.size(3) / block);
    TORCH_CHECK((allow_skip || idx.min().item<int64_t>() >= 0) && idx.max().item<int64_t>() < num_blocks,
                "block index outside [0, ", num_blocks, ")");
  }
}

at::MemoryFormat format_of(bool nhwc) { return nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous; }

void check_launch(int err) { TORCH_CHECK(err == 0, "CUDA kernel launch failed: ", cudaGetErrorString((cudaError_t)err)); }

}  // namespace

at::Tensor split(const at::Tensor& dense, const at::Tensor& idx, int64_t block) {
  const bool nhwc = is_nhwc(dense, "map");
  check_indices(idx, dense, block);
  c10::cuda::CUDAGuard guard(dense.device());
  auto out = at::empty({idx.numel(), dense.size(1), block, block}, dense.options(),
                       nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
  check_launch(blockcopy_cuda_move(dense.data_ptr(), out.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                                   dense.size(1), dense.size(2), dense.size(3), block, nhwc, true, dtype_code(dense),
                                   c10::cuda::getCurrentCUDAStream()));
  return out;
}

void combine(const at::Tensor& blocks, const at::Tensor& idx, at::Tensor dense) {
  const bool nhwc = is_nhwc(dense, "map");
  const int64_t block = blocks.size(-1);
  check_indices(idx, dense, block, true);
  TORCH_CHECK(blocks.scalar_type() == dense.scalar_type(), "blocks and map must share the dtype");
  TORCH_CHECK(blocks.size(0) == idx.numel() && blocks.size(1) == dense.size(1) && blocks.size(2) == block,
              "blocks must be ", idx.numel(), " x ", dense.size(1), " x ", block, " x ", block);
  TORCH_CHECK(blocks.is_contiguous(format_of(nhwc)),
              "blocks and map must share the memory format");
  c10::cuda::CUDAGuard guard(dense.device());
  check_launch(blockcopy_cuda_move(dense.data_ptr(), blocks.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                                   dense.size(1), dense.size(2), dense.size(3), block, nhwc, false, dtype_code(dense),
                                   c10::cuda::getCurrentCUDAStream()));
}

void transfer(const at::Tensor& src, at::Tensor dst, const at::Tensor& idx, int64_t block) {
  const bool nhwc = is_nhwc(dst, "destination map");
  TORCH_CHECK(is_nhwc(src, "source map") == nhwc && src.sizes() == dst.sizes() &&
                  src.scalar_type() == dst.scalar_type(),
              "source and destination maps must share shape, dtype and memory format");
  check_indices(idx, dst, block);
  c10::cuda::CUDAGuard guard(dst.device());
  check_launch(blockcopy_cuda_transfer(src.data_ptr(), dst.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                                       dst.size(1), dst.size(2), dst.size(3), block, nhwc, dtype_code(dst),
                                       c10::cuda::getCurrentCUDAStream()));
}

at::Tensor block_pad(const at::Tensor& blocks, const at::Tensor& block_pos, const at::Tensor& stale,
                     const at::Tensor& idx, std::vector<int64_t> halo, bool replicate, double value,
                     c10::optional<at::Tensor> out_buffer) {
  const bool nhwc = is_nhwc(stale, "stale map");
  const int64_t block = blocks.size(-1);
  check_indices(idx, stale, block);
  TORCH_CHECK(halo.size() == 4 && halo[0] >= 0 && halo[1] >= 0 && halo[2] >= 0 && halo[3] >= 0,
              "halo must be 4 sizes >= 0 (top, bottom, left, right)");
  TORCH_CHECK(blocks.dim() == 4 && blocks.scalar_type() == stale.scalar_type() && blocks.device() == stale.device() &&
                  blocks.size(1) == stale.size(1) && blocks.size(2) == block && blocks.is_contiguous(format_of(nhwc)),
              "blocks must be B x C x b x b on the stale map's device, dtype and memory format");
  const int64_t num_blocks = stale.size(0) * (stale.size(2) / block) * (stale.size(3) / block);
  TORCH_CHECK(block_pos.dim() == 1 && block_pos.scalar_type() == at::kLong && block_pos.numel() == num_blocks &&
                  block_pos.device() == stale.device() && block_pos.is_contiguous(),
              "block_pos must be a contiguous int64 tensor with one entry per block (", num_blocks, ") on the device");
  c10::cuda::CUDAGuard guard(stale.device());
  const std::vector<int64_t> shape{idx.numel(), stale.size(1), block + halo[0] + halo[1], block + halo[2] + halo[3]};
  at::Tensor out;
  if (out_buffer.has_value()) {
    out = *out_buffer;
    TORCH_CHECK(out.sizes() == at::IntArrayRef(shape) && out.scalar_type() == stale.scalar_type() &&
                    out.device() == stale.device() && out.is_contiguous(format_of(nhwc)),
                "out must be a ", shape, " tensor in the stale map's dtype, device and memory format");
  } else {
    out = at::empty(shape, stale.options(), format_of(nhwc));
  }
  check_launch(blockcopy_cuda_block_pad(blocks.data_ptr(), block_pos.data_ptr<int64_t>(), stale.data_ptr(),
                                        out.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(), stale.size(1),
                                        stale.size(2), stale.size(3), block, halo[0], halo[1], halo[2], halo[3], nhwc,
                                        replicate, (float)value, dtype_code(stale), c10::cuda::getCurrentCUDAStream()));
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("split", &split, "packed blocks idx of a map (B x C x b x b)");
  m.def("combine", &combine, "write packed blocks into a map in place (negative indices skip)");
  m.def("transfer", &transfer, "copy blocks idx from src into dst in place");
  m.def("block_pad", &block_pad, "blocks idx with a (top, bottom, left, right) halo from current and stale blocks",
        py::arg("blocks"), py::arg("block_pos"), py::arg("stale"), py::arg("idx"), py::arg("halo"), py::arg("replicate"),
        py::arg("value"), py::arg("out") = py::none());
}
