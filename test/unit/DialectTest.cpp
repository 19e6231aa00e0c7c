//===- DialectTest.cpp - builders, verifiers and parser robustness --------===//

#include "emb/Dialect/EmbDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/MemoryBuffer.h"

#include <gtest/gtest.h>

#include <random>

using namespace mlir;
using namespace mlir::emb;

namespace {

class EmbDialectTest : public ::testing::Test {
protected:
  EmbDialectTest() { context.loadDialect<EmbDialect, func::FuncDialect>(); }

  /// Parses `source`, collecting diagnostics instead of printing them.
  OwningOpRef<ModuleOp> parse(StringRef source) {
    diagnostics.clear();
    ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
      diagnostics.push_back(diag.str());
      return success();
    });
    return parseSourceString<ModuleOp>(source, &context);
  }

  MLIRContext context;
  std::vector<std::string> diagnostics;
};

std::string readTestFile(StringRef relative) {
  auto buffer = llvm::MemoryBuffer::getFile(std::string(EMB_SOURCE_DIR) + "/" +
                                            relative.str());
  EXPECT_TRUE(static_cast<bool>(buffer)) << relative.str();
  return buffer ? (*buffer)->getBuffer().str() : std::string();
}

TEST_F(EmbDialectTest, BuildLookupWithBuilder) {
  OpBuilder b(&context);
  Location loc = b.getUnknownLoc();
  auto module = ModuleOp::create(loc);
  b.setInsertionPointToEnd(module.getBody());
  auto weightTy = RankedTensorType::get({10, 4}, b.getF32Type());
  auto idxTy = RankedTensorType::get({3}, b.getI64Type());
  auto outTy = RankedTensorType::get({3, 4}, b.getF32Type());
  auto fn = func::FuncOp::create(b, loc, "f",
                                 b.getFunctionType({weightTy, idxTy}, {outTy}));
  Block *body = fn.addEntryBlock();
  b.setInsertionPointToStart(body);
  auto lookup =
      LookupOp::create(b, loc, outTy, body->getArgument(0),
                       body->getArgument(1), b.getI64IntegerAttr(-1),
                       PaddingModeAttr::get(&context, PaddingMode::zero));
  func::ReturnOp::create(b, loc, lookup.getResult());
  EXPECT_TRUE(succeeded(verify(module)));
  EXPECT_EQ(lookup.getPaddingIdx(), std::optional<int64_t>(-1));
  EXPECT_EQ(lookup.getPaddingMode(), PaddingMode::zero);

  // An index out of [-V, V) is caught by the verifier.
  lookup.setPaddingIdx(10);
  std::vector<std::string> messages;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    messages.push_back(diag.str());
    return success();
  });
  EXPECT_TRUE(failed(verify(module)));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("'padding_idx' 10 is out of range [-10, 10)"),
            std::string::npos)
      << messages[0];
  module->erase();
}

TEST_F(EmbDialectTest, EnumsRoundTripThroughStrings) {
  for (BagMode mode : {BagMode::sum, BagMode::mean, BagMode::max})
    EXPECT_EQ(symbolizeBagMode(stringifyBagMode(mode)), mode);
  for (PaddingMode mode : {PaddingMode::keep, PaddingMode::zero})
    EXPECT_EQ(symbolizePaddingMode(stringifyPaddingMode(mode)), mode);
  EXPECT_FALSE(symbolizeBagMode("median").has_value());
}

TEST_F(EmbDialectTest, RoundTripFileParsesAndVerifies) {
  std::string source = readTestFile("test/Dialect/Emb/roundtrip.mlir");
  // The lit file is split into chunks by `// -----`; each is a module.
  size_t count = 0;
  for (StringRef rest = source; !rest.empty();) {
    auto [chunk, tail] = rest.split("// -----");
    rest = tail;
    OwningOpRef<ModuleOp> module = parse(chunk);
    EXPECT_TRUE(module) << (diagnostics.empty() ? "" : diagnostics[0]);
    ++count;
  }
  EXPECT_GT(count, 5u);
}

// Bad input must give diagnostics, never a crash: every truncation of a valid
// program, and random byte edits of it, are parsed and (if they parse)
// verified.
TEST_F(EmbDialectTest, TruncatedAndMutatedInputNeverCrashes) {
  std::string source = readTestFile("test/Dialect/Emb/roundtrip.mlir");
  ASSERT_FALSE(source.empty());
  size_t rejected = 0;
  // A copy per prefix: the lexer stops at a NUL, so a StringRef prefix of
  // `source` would be read to the end of the file (never truncated).
  for (size_t len = 0; len < source.size(); len += 7)
    rejected += !parse(source.substr(0, len));
  EXPECT_GT(rejected, 0u);
  EXPECT_FALSE(diagnostics.empty() && rejected == 0);

  std::mt19937 rng(1234);
  const char alphabet[] = "%[](){}<>:,=?x0123456789-@#!\"ef emb.lookupbag";
  for (int trial = 0; trial < 2000; ++trial) {
    std::string mutated = source;
    int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % mutated.size();
      switch (rng() % 3) {
      case 0:
        mutated[pos] = alphabet[rng() % (sizeof(alphabet) - 1)];
        break;
      case 1:
        mutated.erase(pos, 1 + rng() % 8);
        break;
      default:
        mutated.insert(pos, 1, alphabet[rng() % (sizeof(alphabet) - 1)]);
      }
      if (mutated.empty())
        mutated = "x";
    }
    (void)parse(mutated);
  }
}

TEST_F(EmbDialectTest, GarbageGivesLocatedDiagnostic) {
  OwningOpRef<ModuleOp> module = parse("func.func @f() { emb.bag sum %");
  EXPECT_FALSE(module);
  ASSERT_FALSE(diagnostics.empty());
}

} // namespace
