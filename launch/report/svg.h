// A minimal SVG document builder: shapes and text with every string XML-escaped, numbers
// printed with fixed precision. No layout logic; the pictures in report_svg.cpp do that.
#pragma once
#include <string>
#include <string_view>
#include <utility>

namespace dpep::report {

// Escapes &, <, >, " and ' for XML text and attribute values; drops control characters that
// XML 1.0 does not allow.
std::string xml_escape(std::string_view s);

class Svg {
 public:
  Svg(double width, double height);
  // `tip`: a <title> child, which browsers show on hover (empty: none).
  void rect(double x, double y, double w, double h, std::string_view fill,
            std::string_view tip = {}, std::string_view stroke = {}, double stroke_width = 0);
  void line(double x1, double y1, double x2, double y2, std::string_view stroke, double width = 1,
            std::string_view dash = {});
  // anchor: start, middle or end. weight: normal or bold.
  void text(double x, double y, std::string_view s, double size = 12,
            std::string_view anchor = "start", std::string_view weight = "normal",
            std::string_view fill = "#222");
  // Text turned 90 degrees counter-clockwise around (x, y) (vertical axis labels).
  void text_vertical(double x, double y, std::string_view s, double size = 12);
  // A horizontal linear gradient usable as fill "url(#id)"; stops as (offset 0..1, colour).
  void gradient(std::string_view id, const std::pair<double, std::string>* stops, int n);
  std::string str() const;  // the whole document

 private:
  double w_, h_;
  std::string defs_, body_;
};

// "#rrggbb" of a sequential colour scale (pale yellow -> orange -> dark red) at t in [0, 1].
std::string heat_colour(double t);

}  // namespace dpep::report
