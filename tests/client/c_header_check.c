/* Compiles cxlkv/cxlkv.h as C (not C++): the C API must stay valid C99. */
#include "cxlkv/cxlkv.h"

int cxlkv_c_header_check(void);
int cxlkv_c_header_check(void) {
  cxlkv_options options = {"unix:/tmp/x.sock", "tenant", "token", "model", 1, 0, 0, 0, 0};
  cxlkv_page_key key = {{0}};
  return options.want_fd + key.bytes[0] + CXLKV_OK;
}
