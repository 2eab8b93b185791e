// Memory footprint and batch admission: the model's shape (DeepSeek-V3.2), the weights each GPU
// holds, the HBM one request occupies under each residency, and the batch that fits.
// Called by designs.cc. Pure arithmetic on bytes; knows nothing about time.
#pragma once

namespace cxlkv::sim {

// The model being served. Words as in DESIGN.md: an *entry* is one token of one layer of one
// stream; a *page* is 64 tokens.
struct ModelShape {
  double layers = 61;
  double moe_layers = 58;            // layers 4..61 are MoE, the first 3 dense
  double routed_experts = 256;
  double experts_per_token = 8;
  double hidden = 7168;
  double moe_intermediate = 2048;
  double latent_entry_bytes = 656;   // FlashMLA FP8 sparse: 512 e4m3 + 4 fp32 scales + 64 bf16
  double indexer_entry_bytes = 132;  // 128 e4m3 + 1 fp32 scale
  double topk = 2048;
  double page_tokens = 64;
  double total_weight_bytes = 671e9;  // FP8 checkpoint, all parameters
  double active_params = 37e9;        // per token
  double mla_heads = 128;
  double mla_qk_dim = 576;            // 512 latent + 64 rope
  double mla_v_dim = 512;
  double indexer_heads = 64;
  double indexer_dim = 128;

  // Bytes of routed experts (fp8, 1 B/param): moe_layers x experts x 3 matrices x hidden x inter.
  double routed_expert_bytes() const {
    return moe_layers * routed_experts * 3 * hidden * moe_intermediate;  // ~654e9
  }
  // Bytes every GPU holds whatever the EP degree (attention, dense layers, shared experts, embeddings).
  double replicated_bytes() const { return total_weight_bytes - routed_expert_bytes(); }
  // Bytes of one request's latent over all layers for `tokens` tokens.
  double latent_bytes(double tokens) const { return tokens * layers * latent_entry_bytes; }
  // Bytes of one request's indexer keys over all layers for `tokens` tokens.
  double indexer_bytes(double tokens) const { return tokens * layers * indexer_entry_bytes; }
};

// DeepSeek-V3.2(-Exp): the numbers above (config.json of the release, DESIGN.md).
ModelShape deepseek_v32();

// What of a request lives in HBM while it decodes.
struct Residency {
  bool latent_in_hbm = true;          // the whole latent prefix
  bool indexer_in_hbm = true;         // the whole indexer prefix
  double buffer_entries_per_layer = 0;  // hot buffer / LRU pool entries per layer (latent)
  double staging_entries = 0;          // transient entries (one or two layers' top-k)
};

// Weights one GPU holds: routed experts / EP + everything replicated.
double weights_per_gpu_bytes(const ModelShape& m, double expert_parallel);
// HBM left for requests: capacity x usable fraction - weights.
double free_hbm_bytes(double hbm_bytes, double usable_fraction, double weights_bytes);
// HBM one request of `context` tokens occupies under `r`.
double request_hbm_bytes(const ModelShape& m, const Residency& r, double context);
// Largest batch that fits: floor(free / per_request), capped at max_batch; 0 when none fits.
int admitted_batch(double free_bytes, double per_request_bytes, int max_batch);

}  // namespace cxlkv::sim
