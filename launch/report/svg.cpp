#include "launch/report/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace dpep::report {

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') out += ch;
    }
  }
  return out;
}

Svg::Svg(double width, double height) : w_(width), h_(height) {}

void Svg::rect(double x, double y, double w, double h, std::string_view fill, std::string_view tip,
               std::string_view stroke, double stroke_width) {
  body_ += fmt::format(R"(<rect x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}" fill="{}")", x,
                       y, std::max(0.0, w), std::max(0.0, h), xml_escape(fill));
  if (!stroke.empty())
    body_ += fmt::format(R"( stroke="{}" stroke-width="{:.2f}")", xml_escape(stroke), stroke_width);
  if (tip.empty()) {
    body_ += "/>\n";
  } else {
    body_ += "><title>" + xml_escape(tip) + "</title></rect>\n";
  }
}

void Svg::line(double x1, double y1, double x2, double y2, std::string_view stroke, double width,
               std::string_view dash) {
  body_ += fmt::format(
      R"(<line x1="{:.2f}" y1="{:.2f}" x2="{:.2f}" y2="{:.2f}" stroke="{}" stroke-width="{:.2f}")",
      x1, y1, x2, y2, xml_escape(stroke), width);
  if (!dash.empty()) body_ += fmt::format(R"( stroke-dasharray="{}")", xml_escape(dash));
  body_ += "/>\n";
}

void Svg::text(double x, double y, std::string_view s, double size, std::string_view anchor,
               std::string_view weight, std::string_view fill) {
  body_ += fmt::format(
      R"(<text x="{:.2f}" y="{:.2f}" font-size="{:.1f}" text-anchor="{}" font-weight="{}" fill="{}">{}</text>)",
      x, y, size, xml_escape(anchor), xml_escape(weight), xml_escape(fill), xml_escape(s));
  body_ += "\n";
}

void Svg::text_vertical(double x, double y, std::string_view s, double size) {
  body_ += fmt::format(
      R"svg(<text x="{:.2f}" y="{:.2f}" font-size="{:.1f}" text-anchor="middle" fill="#222" transform="rotate(-90 {:.2f} {:.2f})">{}</text>)svg",
      x, y, size, x, y, xml_escape(s));
  body_ += "\n";
}

void Svg::gradient(std::string_view id, const std::pair<double, std::string>* stops, int n) {
  defs_ += fmt::format(R"(<linearGradient id="{}" x1="0" y1="0" x2="1" y2="0">)", xml_escape(id));
  for (int i = 0; i < n; ++i)
    defs_ += fmt::format(R"(<stop offset="{:.3f}" stop-color="{}"/>)", stops[i].first,
                         xml_escape(stops[i].second));
  defs_ += "</linearGradient>\n";
}

std::string Svg::str() const {
  std::string out = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" "
      "viewBox=\"0 0 {:.0f} {:.0f}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
      w_, h_, w_, h_);
  if (!defs_.empty()) out += "<defs>\n" + defs_ + "</defs>\n";
  out += fmt::format("<rect x=\"0\" y=\"0\" width=\"{:.0f}\" height=\"{:.0f}\" fill=\"white\"/>\n",
                     w_, h_);
  out += body_;
  out += "</svg>\n";
  return out;
}

std::string heat_colour(double t) {
  // ColorBrewer YlOrRd, 5 stops.
  static const int stops[5][3] = {
      {255, 255, 204}, {254, 217, 118}, {253, 141, 60}, {227, 26, 28}, {128, 0, 38}};
  if (!(t > 0)) t = 0;
  if (t > 1) t = 1;
  const double p = t * 4;
  const int i = std::min(3, static_cast<int>(p));
  const double f = p - i;
  int rgb[3];
  for (int k = 0; k < 3; ++k)
    rgb[k] = static_cast<int>(std::lround(stops[i][k] + f * (stops[i + 1][k] - stops[i][k])));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

}  // namespace dpep::report
