// Only on the include path of TSan builds (cmake/Tsan.cmake).
//
// Debian's libprotobuf is built without ThreadSanitizer, but the real map_field.h gives
// MapFieldBase two extra members (seq1_, seq2_) whenever __SANITIZE_THREAD__ is defined, which
// GCC does under -fsanitize=thread. Our objects (which inline much of the map code) and the
// library would then disagree on the layout of every map field: a map the library filled is
// read at the wrong offsets by our inline code (a SEGV in Map::find). Hiding the macro while the
// real header is read keeps the library's layout; TSan itself is unaffected.
#pragma push_macro("__SANITIZE_THREAD__")
#undef __SANITIZE_THREAD__
#include_next <google/protobuf/map_field.h>
#pragma pop_macro("__SANITIZE_THREAD__")
