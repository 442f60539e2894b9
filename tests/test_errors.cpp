// ExceptionGroup::split and subgroup by type, as Python's: nesting kept, empty groups dropped,
// the message kept, a group matching whole.

#include <gtest/gtest.h>

#include <exception>
#include <stdexcept>
#include <string>

#include "weave/errors.hpp"

namespace {

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

const weave::ExceptionGroup& group_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const weave::ExceptionGroup& g) {
    return g;
  }
}

weave::ExceptionGroup sample() {
  auto inner = std::make_exception_ptr(
      weave::ExceptionGroup("inner", {std::make_exception_ptr(weave::ValueError("v2")),
                                      std::make_exception_ptr(std::runtime_error("r2"))}));
  return weave::ExceptionGroup("outer", {std::make_exception_ptr(weave::ValueError("v1")), inner,
                                         std::make_exception_ptr(weave::TimeoutError())});
}

TEST(ExceptionGroupSplit, SplitsByTypeKeepingTheNesting) {
  auto [match, rest] = sample().split<weave::ValueError>();
  ASSERT_TRUE(match.has_value());
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(match->message(), "outer");
  ASSERT_EQ(match->exceptions().size(), 2U);
  EXPECT_EQ(what_of(match->exceptions()[0]), "v1");
  const weave::ExceptionGroup& m_inner = group_of(match->exceptions()[1]);
  EXPECT_EQ(m_inner.message(), "inner");
  ASSERT_EQ(m_inner.exceptions().size(), 1U);
  EXPECT_EQ(what_of(m_inner.exceptions()[0]), "v2");

  ASSERT_EQ(rest->exceptions().size(), 2U);
  const weave::ExceptionGroup& r_inner = group_of(rest->exceptions()[0]);
  ASSERT_EQ(r_inner.exceptions().size(), 1U);
  EXPECT_EQ(what_of(r_inner.exceptions()[0]), "r2");
  EXPECT_EQ(what_of(rest->exceptions()[1]), "TimeoutError");
}

TEST(ExceptionGroupSplit, BaseTypesMatchDerivedOnesAndEmptySidesAreNullopt) {
  auto [all, none] = sample().split<std::exception>();
  EXPECT_FALSE(none.has_value());
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->exceptions().size(), 3U);
  auto [errors, others] = sample().split<weave::Error>();  // the group itself is an Error
  ASSERT_TRUE(errors.has_value());
  EXPECT_FALSE(others.has_value());
  EXPECT_FALSE(sample().subgroup<std::out_of_range>().has_value());
  auto timeouts = sample().subgroup<weave::TimeoutError>();
  ASSERT_TRUE(timeouts.has_value());
  ASSERT_EQ(timeouts->exceptions().size(), 1U);
  EXPECT_EQ(what_of(timeouts->exceptions()[0]), "TimeoutError");
}

TEST(ExceptionGroupSplit, CancelledErrorIsSplitOffToo) {
  weave::ExceptionGroup g("g", {std::make_exception_ptr(weave::CancelledError("c")),
                                std::make_exception_ptr(std::runtime_error("r"))});
  auto [cancelled, rest] = g.split<weave::CancelledError>();
  ASSERT_TRUE(cancelled.has_value());
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(cancelled->exceptions().size(), 1U);
  EXPECT_EQ(what_of(rest->exceptions()[0]), "r");
}

}  // namespace
