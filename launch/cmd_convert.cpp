// dpep convert: Hugging Face DeepSeek-V3 checkpoint folder -> dpep HDF5 model file.
#include <fmt/format.h>

#include <boost/program_options.hpp>

#include "launch/command.h"
#include "launch/run_options.h"
#include "model/io/converter.h"

namespace po = boost::program_options;

namespace {

int run_convert(int argc, char** argv) {
  std::string hf, out, dtype = "keep";
  bool quiet = false;
  const std::string usage = "usage: dpep convert --hf DIR --out FILE.h5 [--dtype keep|bf16|fp32]";
  po::options_description desc("options");
  desc.add_options()(
      "hf", po::value(&hf)->required(),
      "Hugging Face checkpoint folder (config.json, model.safetensors[.index.json], shards)")(
      "out", po::value(&out)->required(), "output dpep model file (.h5)")(
      "dtype", po::value(&dtype)->default_value("keep"),
      "keep (bf16/fp8 as stored, f16 -> f32), bf16, or fp32")("quiet", po::bool_switch(&quiet),
                                                              "no per-tensor progress lines");
  po::variables_map vm;
  if (!dpep::parse_command_line(argc, argv, desc, vm, usage)) return 0;
  dpep::ConvertOptions opt;
  opt.hf_dir = hf;
  opt.out_path = out;
  opt.dtype = dpep::convert_dtype_from_name(dtype);
  opt.progress = !quiet;
  const auto st = dpep::convert_checkpoint(opt);
  fmt::print(stderr,
             "converted {} tensors ({:.1f} MB read, largest tensor {} bytes) into {} in {:.1f} s\n",
             st.tensors, st.bytes_read / 1e6, st.largest_piece, out, st.seconds);
  if (!st.mtp_note.empty()) fmt::print(stderr, "{}", st.mtp_note);
  if (st.mtp_layers > 0)
    fmt::print(stderr,
               "MTP: kept {} layer(s) of multi-token prediction (checkpoint layers {}.., {} "
               "datasets under mtp/) for a later speculative decoder; dpep does not load them\n",
               st.mtp_layers, st.mtp_layer_first, st.mtp_tensors);
  else if (st.mtp_declared > 0)
    fmt::print(stderr,
               "MTP: config.json declares {} MTP layer(s); none kept (the file's "
               "num_nextn_predict_layers is 0)\n",
               st.mtp_declared);
  return 0;
}

dpep::RegisterCommand reg("convert", "convert a Hugging Face checkpoint into a dpep model file",
                          run_convert);

}  // namespace
