#include "tipperary/transcoder/path_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tipperary::transcoder {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using Kind = PathTemplate::SegmentKind;

PathTemplate MustParse(std::string_view text) {
  absl::StatusOr<PathTemplate> t = PathTemplate::Parse(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.status();
  return t.ok() ? *t : PathTemplate();
}

TEST(PathTemplateParse, AllSyntaxes) {
  PathTemplate t = MustParse("/v1/{name=shelves/*/things/*}:run");
  EXPECT_EQ(t.verb(), "run");
  ASSERT_EQ(t.segments().size(), 5u);
  EXPECT_EQ(t.segments()[0], (PathTemplate::Segment{Kind::kLiteral, "v1"}));
  EXPECT_EQ(t.segments()[2].kind, Kind::kWildcard);
  ASSERT_EQ(t.variables().size(), 1u);
  EXPECT_EQ(t.variables()[0].field_path, "name");
  EXPECT_EQ(t.variables()[0].start_segment, 1u);
  EXPECT_EQ(t.variables()[0].end_segment, 5u);
  EXPECT_TRUE(t.variables()[0].multi_segment);
  EXPECT_EQ(t.Shape(), "/v1/shelves/*/things/*:run");

  PathTemplate simple = MustParse("/v1/{a.b.c}/x/*/**");
  EXPECT_EQ(simple.Shape(), "/v1/*/x/*/**");
  EXPECT_FALSE(simple.variables()[0].multi_segment);
  EXPECT_EQ(simple.variables()[0].field_path, "a.b.c");

  PathTemplate files = MustParse("/v1/files/{path=**}");
  EXPECT_TRUE(files.variables()[0].multi_segment);
  EXPECT_EQ(MustParse("/").Shape(), "/");
  EXPECT_EQ(MustParse("/pkg.Svc/Method").segments()[0].literal, "pkg.Svc");
  EXPECT_EQ(MustParse("/v1/{x=*}").variables()[0].multi_segment, false);
}

TEST(PathTemplateParse, Errors) {
  for (const char* bad : {"",
                          "v1/x",
                          "/v1//x",
                          "/v1/x/",
                          "/v1/{",
                          "/v1/{name",
                          "/v1/{name=}",
                          "/v1/{1abc}",
                          "/v1/{a..b}",
                          "/v1/{a={b}}",
                          "/v1/**/x",
                          "/v1/{a=**}/x",
                          "/v1/x:",
                          "/v1/x:a/b",
                          "/v1/{a}/{a}",
                          "/v1/a*b",
                          "/v1/{a}:run:x",
                          "/:run",
                          "/v1/{name=shelves/*}}",
                          "/v1/x?y",
                          "/v1/a b"}) {
    absl::StatusOr<PathTemplate> t = PathTemplate::Parse(bad);
    EXPECT_FALSE(t.ok()) << bad;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("invalid path template"));
    }
  }
}

TEST(PathTemplateMatch, LiteralsWildcardsAndVariables) {
  PathTemplate t = MustParse("/v1/{name=shelves/*/things/*}");
  EXPECT_THAT(*t.Match("/v1/shelves/s1/things/t1"),
              ElementsAre(Pair("name", "shelves/s1/things/t1")));
  EXPECT_FALSE(t.Match("/v1/shelves/s1/things").has_value());
  EXPECT_FALSE(t.Match("/v1/shelves/s1/books/t1").has_value());
  EXPECT_FALSE(t.Match("/v1/shelves//things/t1").has_value());  // "*" is never empty.
  EXPECT_FALSE(t.Match("/v1/shelves/s1/things/t1/").has_value());
  EXPECT_FALSE(t.Match("v1/shelves/s1/things/t1").has_value());

  PathTemplate nested = MustParse("/v1/echo/{f_nested.name}/{f_int64}");
  EXPECT_THAT(*nested.Match("/v1/echo/abc/42"),
              ElementsAre(Pair("f_nested.name", "abc"), Pair("f_int64", "42")));
  EXPECT_TRUE(MustParse("/").Match("/").has_value());
  EXPECT_FALSE(MustParse("/").Match("/x").has_value());
}

TEST(PathTemplateMatch, Verbs) {
  PathTemplate run = MustParse("/v1/{name=things/*}:run");
  EXPECT_THAT(*run.Match("/v1/things/t1:run"), ElementsAre(Pair("name", "things/t1")));
  EXPECT_FALSE(run.Match("/v1/things/t1").has_value());
  EXPECT_FALSE(run.Match("/v1/things/t1:walk").has_value());
  // Without a verb in the template, ':' is part of the segment.
  PathTemplate plain = MustParse("/v1/names/{name}");
  EXPECT_THAT(*plain.Match("/v1/names/a:b"), ElementsAre(Pair("name", "a:b")));
  // Nor is an empty verb one: a trailing ':' belongs to the segment.
  EXPECT_THAT(*plain.Match("/v1/names/a:"), ElementsAre(Pair("name", "a:")));
  EXPECT_FALSE(run.Match("/v1/things/t1:").has_value());
  PathTemplate::SplitPath split;
  ASSERT_TRUE(PathTemplate::Split("/v1/a:", &split));
  EXPECT_FALSE(split.has_verb);
  EXPECT_EQ(split.segments.back(), "a:");
  PathTemplate tail = MustParse("/v1/{name=**}:undelete");
  EXPECT_THAT(*tail.Match("/v1/a/b/c:undelete"), ElementsAre(Pair("name", "a/b/c")));
}

TEST(PathTemplateMatch, DoubleWildcard) {
  PathTemplate t = MustParse("/v1/files/{path=**}");
  EXPECT_THAT(*t.Match("/v1/files/a/b/c.txt"), ElementsAre(Pair("path", "a/b/c.txt")));
  EXPECT_THAT(*t.Match("/v1/files/x"), ElementsAre(Pair("path", "x")));
  EXPECT_THAT(*t.Match("/v1/files"), ElementsAre(Pair("path", "")));
  EXPECT_FALSE(t.Match("/v1/file/x").has_value());
  PathTemplate mid = MustParse("/v1/{name=projects/*/**}");
  EXPECT_THAT(*mid.Match("/v1/projects/p/x/y"), ElementsAre(Pair("name", "projects/p/x/y")));
  EXPECT_FALSE(mid.Match("/v1/projects").has_value());
}

TEST(PathTemplateMatch, PercentDecoding) {
  // Single-segment variables decode everything, %2F included.
  PathTemplate single = MustParse("/v1/names/{name}");
  EXPECT_THAT(*single.Match("/v1/names/a%2Fb%20c%3a"), ElementsAre(Pair("name", "a/b c:")));
  EXPECT_THAT(*single.Match("/v1/names/100%25"), ElementsAre(Pair("name", "100%")));
  EXPECT_THAT(*single.Match("/v1/names/bad%zzescape%"), ElementsAre(Pair("name", "bad%zzescape%")));
  EXPECT_THAT(*single.Match("/v1/names/a+b"), ElementsAre(Pair("name", "a+b")));  // No '+'.
  // Multi-segment variables keep %2F encoded.
  PathTemplate multi = MustParse("/v1/files/{path=**}");
  EXPECT_THAT(*multi.Match("/v1/files/a%2Fb/c%20d%2f"), ElementsAre(Pair("path", "a%2Fb/c d%2f")));
  PathTemplate shelves = MustParse("/v1/{name=shelves/*}");
  EXPECT_THAT(*shelves.Match("/v1/shelves/x%2Fy"), ElementsAre(Pair("name", "shelves/x%2Fy")));
}

TEST(PercentDecode, QueryMode) {
  EXPECT_EQ(PercentDecode("a+b%2Bc", false, true), "a b+c");
  EXPECT_EQ(PercentDecode("%", false), "%");
  EXPECT_EQ(PercentDecode("%4", false), "%4");
  EXPECT_EQ(PercentDecode("%41", false), "A");
}

TEST(PercentEncoding, ValidAndInvalidEscapes) {
  EXPECT_TRUE(IsValidPercentEncoding("/v1/echo/a%2Fb%20c"));
  EXPECT_TRUE(IsValidPercentEncoding("/v1/plain"));
  EXPECT_FALSE(IsValidPercentEncoding("/v1/echo/%zz"));
  EXPECT_FALSE(IsValidPercentEncoding("/v1/echo/%4"));
  EXPECT_FALSE(IsValidPercentEncoding("/v1/echo/%"));
}

}  // namespace
}  // namespace tipperary::transcoder
