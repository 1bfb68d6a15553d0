// Python bindings of the CUDA block movements (blockcopy_cuda.cu): tensor checks, allocation, stream.
// Same functions and contract as blockcopy_cpu.cpp (moves: any dtype; block_pad: float32, float64, float16,
// bfloat16). Block indices are range-checked by the kernels on the device, not here: checking them on the host
// would wait for the device before every movement. An index out of range moves nothing and sets a per-device
// flag that take_index_error reads (one sync, once per frame).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

int blockcopy_cuda_move(void* map, void* packed, const int64_t* ids, int64_t nb, int64_t n, int64_t c, int64_t h,
                        int64_t w, int64_t b, bool nhwc, bool to_packed, int64_t border, int elem_size, int* error,
                        cudaStream_t stream);
int blockcopy_cuda_transfer(const void* src, void* dst, const int64_t* ids, int64_t nb, int64_t n, int64_t c,
                            int64_t h, int64_t w, int64_t b, bool nhwc, int elem_size, int* error,
                            cudaStream_t stream);
int blockcopy_cuda_block_pad(const void* blocks, const int64_t* pos, int64_t num_packed, const void* stale, void* out,
                             const int64_t* ids, int64_t nb, int64_t n, int64_t c, int64_t h, int64_t w, int64_t b,
                             int64_t top, int64_t bottom, int64_t left, int64_t right, bool nhwc, bool replicate,
                             uint64_t value_bits, int elem_size, int* error, cudaStream_t stream);

namespace {

bool is_nhwc(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 4 && t.is_cuda(), name, " must be a 4-D CUDA tensor");
  const int64_t es = t.element_size();
  TORCH_CHECK(!t.is_complex() && (es == 1 || es == 2 || es == 4 || es == 8), name, " has an unsupported dtype ",
              t.scalar_type());
  if (t.is_contiguous()) return false;
  TORCH_CHECK(t.is_contiguous(at::MemoryFormat::ChannelsLast), name, " must be contiguous (NCHW or channels_last)");
  return true;
}

void check_indices(const at::Tensor& idx, const at::Tensor& map, int64_t block) {
  TORCH_CHECK(idx.dim() == 1 && idx.scalar_type() == at::kLong && idx.device() == map.device() && idx.is_contiguous(),
              "block indices must be a contiguous 1-D int64 tensor on the map's device");
  TORCH_CHECK(block > 0 && map.size(2) % block == 0 && map.size(3) % block == 0, "block size ", block,
              " does not divide the map size ", map.size(2), "x", map.size(3));
}

at::MemoryFormat format_of(bool nhwc) { return nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous; }

// Whether `t` is laid out as the map is. An empty tensor always is (torch calls it NCHW-contiguous whatever its
// strides, but channels_last-contiguous only with channels_last strides, which an empty crop need not have).
bool laid_out_as(const at::Tensor& t, bool nhwc) { return t.numel() == 0 || t.is_contiguous(format_of(nhwc)); }

void check_launch(int err) { TORCH_CHECK(err == 0, "CUDA kernel launch failed: ", cudaGetErrorString((cudaError_t)err)); }

// The device's index-error flag (one int32 in device memory, zero until a kernel meets a bad index).
at::Tensor& error_flag(const at::Device& device) {
  static std::mutex lock;
  static std::unordered_map<int, at::Tensor> flags;
  std::lock_guard<std::mutex> guard(lock);
  auto it = flags.find(device.index());
  if (it == flags.end()) {
    it = flags.emplace(device.index(), at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(device))).first;
  }
  return it->second;
}

int* error_ptr(const at::Tensor& map) { return error_flag(map.device()).data_ptr<int>(); }

// The bit pattern of `value` in the map's floating dtype, in the low bytes of a 64-bit word.
uint64_t value_bits(double value, at::ScalarType dtype) {
  uint64_t bits = 0;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "block_pad_value", [&] {
    const scalar_t v = static_cast<scalar_t>(value);
    std::memcpy(&bits, &v, sizeof(scalar_t));
  });
  return bits;
}

}  // namespace

at::Tensor split(const at::Tensor& dense, const at::Tensor& idx, int64_t block) {
  const bool nhwc = is_nhwc(dense, "map");
  check_indices(idx, dense, block);
  c10::cuda::CUDAGuard guard(dense.device());
  auto out = at::empty({idx.numel(), dense.size(1), block, block}, dense.options(), format_of(nhwc));
  check_launch(blockcopy_cuda_move(dense.data_ptr(), out.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                                   dense.size(0), dense.size(1), dense.size(2), dense.size(3), block, nhwc, true, 0,
                                   dense.element_size(), error_ptr(dense), c10::cuda::getCurrentCUDAStream()));
  return out;
}

void combine(const at::Tensor& blocks, const at::Tensor& idx, at::Tensor dense, int64_t border) {
  const bool nhwc = is_nhwc(dense, "map");
  const int64_t block = blocks.size(-1);
  check_indices(idx, dense, block);
  TORCH_CHECK(border >= 0, "border must be >= 0, got ", border);
  TORCH_CHECK(blocks.scalar_type() == dense.scalar_type(), "blocks and map must share the dtype");
  TORCH_CHECK(blocks.size(0) == idx.numel() && blocks.size(1) == dense.size(1) && blocks.size(2) == block,
              "blocks must be ", idx.numel(), " x ", dense.size(1), " x ", block, " x ", block);
  TORCH_CHECK(laid_out_as(blocks, nhwc), "blocks and map must share the memory format");
  c10::cuda::CUDAGuard guard(dense.device());
  check_launch(blockcopy_cuda_move(dense.data_ptr(), blocks.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                                   dense.size(0), dense.size(1), dense.size(2), dense.size(3), block, nhwc, false,
                                   border, dense.element_size(), error_ptr(dense), c10::cuda::getCurrentCUDAStream()));
}

void transfer(const at::Tensor& src, at::Tensor dst, const at::Tensor& idx, int64_t block) {
  const bool nhwc = is_nhwc(dst, "destination map");
  TORCH_CHECK(is_nhwc(src, "source map") == nhwc && src.sizes() == dst.sizes() &&
                  src.scalar_type() == dst.scalar_type(),
              "source and destination maps must share shape, dtype and memory format");
  check_indices(idx, dst, block);
  c10::cuda::CUDAGuard guard(dst.device());
  check_launch(blockcopy_cuda_transfer(src.data_ptr(), dst.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                                       dst.size(0), dst.size(1), dst.size(2), dst.size(3), block, nhwc,
                                       dst.element_size(), error_ptr(dst), c10::cuda::getCurrentCUDAStream()));
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
                  blocks.size(1) == stale.size(1) && blocks.size(2) == block && laid_out_as(blocks, nhwc),
              "blocks must be B x C x b x b on the stale map's device, dtype and memory format");
  const int64_t num_blocks = stale.size(0) * (stale.size(2) / block) * (stale.size(3) / block);
  TORCH_CHECK(block_pos.dim() == 1 && block_pos.scalar_type() == at::kLong && block_pos.numel() == num_blocks &&
                  block_pos.device() == stale.device() && block_pos.is_contiguous(),
              "block_pos must be a contiguous int64 tensor with one entry per block (", num_blocks, ") on the device");
  const uint64_t bits = value_bits(value, stale.scalar_type());
  c10::cuda::CUDAGuard guard(stale.device());
  const std::vector<int64_t> shape{idx.numel(), stale.size(1), block + halo[0] + halo[1], block + halo[2] + halo[3]};
  at::Tensor out;
  if (out_buffer.has_value()) {
    out = *out_buffer;
    TORCH_CHECK(out.sizes() == at::IntArrayRef(shape) && out.scalar_type() == stale.scalar_type() &&
                    out.device() == stale.device() && laid_out_as(out, nhwc),
                "out must be a ", shape, " tensor in the stale map's dtype, device and memory format");
  } else {
    out = at::empty(shape, stale.options(), format_of(nhwc));
  }
  check_launch(blockcopy_cuda_block_pad(blocks.data_ptr(), block_pos.data_ptr<int64_t>(), blocks.size(0),
                                        stale.data_ptr(), out.data_ptr(), idx.data_ptr<int64_t>(), idx.numel(),
                                        stale.size(0), stale.size(1), stale.size(2), stale.size(3), block, halo[0],
                                        halo[1], halo[2], halo[3], nhwc, replicate, bits, stale.element_size(),
                                        error_ptr(stale), c10::cuda::getCurrentCUDAStream()));
  return out;
}

// Reads and clears the device's index-error flag (waits for the work queued so far): 0, or bits 1 (a block
// index outside the map) and 2 (a block_pos entry outside the packed blocks). device_index -1: the current one.
int64_t take_index_error(int64_t device_index) {
  const at::Device device(at::kCUDA, device_index < 0 ? c10::cuda::current_device() : device_index);
  c10::cuda::CUDAGuard guard(device);
  at::Tensor& flag = error_flag(device);
  const int64_t error = flag.item<int>();
  if (error) flag.zero_();
  return error;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("split", &split, "packed blocks idx of a map (B x C x b x b)");
  m.def("combine", &combine, "write packed blocks into a map in place (negative indices skip; border > 0: only "
        "each block's frame of that width)", py::arg("blocks"), py::arg("idx"), py::arg("dense"), py::arg("border") = 0);
  m.def("transfer", &transfer, "copy blocks idx from src into dst in place");
  m.def("block_pad", &block_pad, "blocks idx with a (top, bottom, left, right) halo from current and stale blocks",
        py::arg("blocks"), py::arg("block_pos"), py::arg("stale"), py::arg("idx"), py::arg("halo"), py::arg("replicate"),
        py::arg("value"), py::arg("out") = py::none());
  m.def("take_index_error", &take_index_error, "read and clear the device's block-index error flag",
        py::arg("device_index") = -1);
}
