// Renders a parsed template (ast.h) with jinja2's runtime semantics:
//   - names resolve from the innermost scope out to the render context, then the globals
//     (builtins.h); a missing one is Undefined;
//   - every for-loop iteration has its own scope, so {% set %} inside a loop does not leak
//     out of it (namespace() is the way templates carry state across iterations), while
//     {% set %} inside {% if %} sets the enclosing scope;
//   - `loop` offers index, index0, revindex, revindex0, first, last, length, previtem,
//     nextitem, depth, depth0 and cycle();
//   - and/or return an operand, comparisons chain, arithmetic follows Python (floor
//     division and modulo signs, int/float promotion; 64-bit overflow is an error).
//   - a render is bounded: kMaxRenderSteps statements and loop iterations, output and
//     strings of kMaxStringBytes (value.h), so that a template that never ends or grows a
//     string without end fails the request instead of holding a server thread or its memory
//     (jinja2 has no such bounds; no chat template comes near them).
// Errors carry the template line of the statement that failed.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/ast.h"

namespace mlaserve::tokenizer::jinja {

inline constexpr int64_t kMaxRenderSteps = 1'000'000;

using Context = std::vector<std::pair<std::string, Value>>;

// Renders `body` with the variables in `context`. Throws TemplateError.
std::string render(const Body& body, const Context& context);

}  // namespace mlaserve::tokenizer::jinja
