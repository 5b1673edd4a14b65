/* The varints of libdimg's formats: dimg/varint.h (public, as the layer
 * recipes in packer/ use them too). */
#ifndef DIMG_VARINT_INTERNAL_H
#define DIMG_VARINT_INTERNAL_H

#include "dimg/varint.h"

#endif
