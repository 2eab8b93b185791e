/* Built against an installed libcxlkv with `pkg-config --cflags --libs cxlkv` only (install_test.sh):
 * connects to the daemon at argv[1], writes one page of every stream and layer, commits it, looks
 * it up, gathers one entry back and checks its bytes. Exit 0 when all of that held. */
#include <cxlkv/cxlkv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char* what) {
  fprintf(stderr, "lookup.c: %s: %s\n", what, cxlkv_last_error());
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s ENDPOINT\n", argv[0]);
    return 2;
  }
  cxlkv_options options = {argv[1], "install", "install-token", "install-c", 1, NULL, 0, 0, NULL};
  cxlkv_client* client = NULL;
  if (cxlkv_connect(&options, &client) != 0) return fail("connect");

  uint32_t page_tokens = cxlkv_page_tokens(client);
  int32_t* tokens = malloc(page_tokens * sizeof(int32_t));
  for (uint32_t t = 0; t < page_tokens; ++t) tokens[t] = (int32_t)(1000 + t);
  cxlkv_page_key key;
  if (cxlkv_page_keys(client, tokens, page_tokens, NULL, &key, 1) != 1) return fail("page_keys");

  cxlkv_write_lease* wl = NULL;
  if (cxlkv_reserve(client, NULL, &key, 1, &wl) != 0) return fail("reserve");
  int latent = cxlkv_stream_index(client, "latent");
  int streams[2] = {latent, cxlkv_stream_index(client, "indexer")};
  if (streams[0] < 0 || streams[1] < 0) return fail("the daemon's layout has no latent or indexer stream");
  for (int n = 0; n < 2; ++n) {
    int s = streams[n];
    uint32_t bytes = cxlkv_entry_bytes(client, s);
    unsigned char* run = malloc((size_t)bytes * page_tokens);
    for (uint32_t l = 0; l < cxlkv_layers(client); ++l) {
      for (size_t i = 0; i < (size_t)bytes * page_tokens; ++i) run[i] = (unsigned char)(i * 7 + l + s);
      if (cxlkv_write_entries(wl, 0, s, l, run, page_tokens) != 0) return fail("write_entries");
    }
    free(run);
  }
  uint32_t committed = 0;
  if (cxlkv_commit(client, wl, &committed) != 0 || committed != 1) return fail("commit");
  cxlkv_write_lease_free(wl);

  cxlkv_read_lease* rl = NULL;
  if (cxlkv_lookup(client, &key, 1, &rl) != 0) return fail("lookup");
  if (cxlkv_read_lease_pages(rl) != 1) {
    fprintf(stderr, "lookup.c: lookup found %u pages, 1 expected\n", cxlkv_read_lease_pages(rl));
    return 1;
  }
  uint32_t bytes = cxlkv_entry_bytes(client, latent);
  unsigned char* row = malloc(bytes);
  int32_t index = 5;
  if (cxlkv_gather_topk(rl, latent, 1, &index, 1, row) != 0) return fail("gather_topk");
  for (uint32_t i = 0; i < bytes; ++i) {
    if (row[i] != (unsigned char)((5 * bytes + i) * 7 + 1 + latent)) {
      fprintf(stderr, "lookup.c: entry 5 of layer 1, byte %u differs\n", i);
      return 1;
    }
  }
  cxlkv_read_lease_free(rl);
  cxlkv_disconnect(client);
  free(row);
  free(tokens);
  printf("lookup.c: 1 page written, found and read back\n");
  return 0;
}
