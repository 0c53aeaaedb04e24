// Syntax tree of the Jinja subset. Expressions and statements are "fat" nodes: a kind plus
// the fields that kind uses, listed per kind below.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace mlaserve::tokenizer::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,    // literal
  kName,       // name
  kList,       // operands: the elements
  kTuple,      // operands: the elements
  kDict,       // operands: key0, value0, key1, value1, ...
  kGetAttr,    // operands[0].name
  kGetItem,    // operands[0][operands[1]]
  kSlice,      // operands[0][operands[1]:operands[2]:operands[3]], absent parts null
  kCall,       // operands[0](operands[1...], kwargs)
  kFilter,     // operands[0] | name(operands[1...], kwargs)
  kTest,       // operands[0] is name(operands[1...], kwargs)
  kNot,        // not operands[0]
  kNegate,     // -operands[0]
  kPlus,       // +operands[0]
  kBinary,     // operands[0] name operands[1], name one of + - * / // % ** ~
  kAnd,        // operands[0] and operands[1]
  kOr,         // operands[0] or operands[1]
  kCompare,    // operands[0] ops[0] operands[1] ops[1] operands[2] ...; ops: == != < <= > >= in notin
  kCondition,  // operands[0] if operands[1] else operands[2] (null: undefined)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  int height = 1;  // of this node's subtree (the parser bounds it: evaluation recurses that deep)
  Value literal;
  std::string name;
  std::vector<ExprPtr> operands;
  std::vector<std::string> ops;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

enum class StmtKind {
  kText,      // text
  kOutput,    // {{ expr }}
  kIf,        // branches (condition, body) in order, then else_body
  kFor,       // for targets in expr [if filter]: body, else else_body
  kSet,       // set targets = expr, or set targets[0].attribute = expr (namespace)
  kSetBlock,  // set targets[0] %} body {% endset
  kBreak,
  kContinue,
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::string> targets;
  std::string attribute;  // kSet on a namespace attribute
};

}  // namespace mlaserve::tokenizer::jinja
