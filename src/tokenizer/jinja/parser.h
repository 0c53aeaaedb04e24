// Parser of the Jinja subset: tokens (lexer.h) to a syntax tree (ast.h), with jinja2's
// grammar and operator precedence (lowest first): a if b else c; or; and; not; comparisons
// (== != < <= > >= in, not in; chained); + -; ~; * / // %; **; unary - +; then postfix
// .attr, [index], [a:b:c], calls, |filter and `is` tests.
//
// Statements: if/elif/else, for (tuple targets, an `if` filter, else), set (names, tuples,
// namespace attributes, block form), break/continue, raw. Any other tag (macro, call,
// filter, include, import, extends, block, with, ...) and any filter or test the engine
// does not implement is an error that names it, so a template is never rendered wrongly
// by omission.
#pragma once

#include <string_view>

#include "tokenizer/jinja/ast.h"

namespace mlaserve::tokenizer::jinja {

// Parses a template. Throws TemplateError (with the line) on syntax errors and unsupported
// constructs.
Body parse_template(std::string_view source);

}  // namespace mlaserve::tokenizer::jinja
