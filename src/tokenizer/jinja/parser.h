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
//
// Nesting is bounded (kMaxNesting): of statements, of parentheses, lists and other nested
// expressions, and the height of every expression's tree (a chain a + b + c + ... is as
// tall as it is long). Parsing, evaluating and freeing recurse that deep; a deeper template
// is refused (jinja2 itself fails past ~80 levels of parentheses, at Python's recursion limit).
#pragma once

#include <string_view>

#include "tokenizer/jinja/ast.h"

namespace mlaserve::tokenizer::jinja {

inline constexpr int kMaxNesting = 200;

// Parses a template. Throws TemplateError (with the line) on syntax errors and unsupported
// constructs.
Body parse_template(std::string_view source);

}  // namespace mlaserve::tokenizer::jinja
