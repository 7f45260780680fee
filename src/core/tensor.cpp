// Tensor views.
#include "core/tensor.h"

namespace spider {

tensor make_tensor(dtype type, void * data, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3) {
    tensor t;
    t.type = type;
    t.data = data;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = ne2;
    t.ne[3] = ne3;
    t.nb[0] = dtype_get_traits(type) ? dtype_get_traits(type)->block_bytes : 0;
    t.nb[1] = dtype_row_bytes(type, ne0);
    t.nb[2] = t.nb[1] * ne1;
    t.nb[3] = t.nb[2] * ne2;
    return t;
}

}  // namespace spider
