#include "core/tokenizers/hf.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "core/error.hpp"

namespace kvlab {
namespace {

using nlohmann::json;

struct Range {
  uint32_t lo, hi;
};

// Unicode 14.0 general categories L* (letters) and N* (numbers), generated with Python 3.11:
//   [c for c in range(0x110000) if unicodedata.category(chr(c))[0] in "L"/"N"] as ranges.
constexpr Range kLetters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xAA, 0xAA},       {0xB5, 0xB5},
    {0xBA, 0xBA},       {0xC0, 0xD6},       {0xD8, 0xF6},       {0xF8, 0x2C1},
    {0x2C6, 0x2D1},     {0x2E0, 0x2E4},     {0x2EC, 0x2EC},     {0x2EE, 0x2EE},
    {0x370, 0x374},     {0x376, 0x377},     {0x37A, 0x37D},     {0x37F, 0x37F},
    {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},     {0x38E, 0x3A1},
    {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},     {0x531, 0x556},
    {0x559, 0x559},     {0x560, 0x588},     {0x5D0, 0x5EA},     {0x5EF, 0x5F2},
    {0x620, 0x64A},     {0x66E, 0x66F},     {0x671, 0x6D3},     {0x6D5, 0x6D5},
    {0x6E5, 0x6E6},     {0x6EE, 0x6EF},     {0x6FA, 0x6FC},     {0x6FF, 0x6FF},
    {0x710, 0x710},     {0x712, 0x72F},     {0x74D, 0x7A5},     {0x7B1, 0x7B1},
    {0x7CA, 0x7EA},     {0x7F4, 0x7F5},     {0x7FA, 0x7FA},     {0x800, 0x815},
    {0x81A, 0x81A},     {0x824, 0x824},     {0x828, 0x828},     {0x840, 0x858},
    {0x860, 0x86A},     {0x870, 0x887},     {0x889, 0x88E},     {0x8A0, 0x8C9},
    {0x904, 0x939},     {0x93D, 0x93D},     {0x950, 0x950},     {0x958, 0x961},
    {0x971, 0x980},     {0x985, 0x98C},     {0x98F, 0x990},     {0x993, 0x9A8},
    {0x9AA, 0x9B0},     {0x9B2, 0x9B2},     {0x9B6, 0x9B9},     {0x9BD, 0x9BD},
    {0x9CE, 0x9CE},     {0x9DC, 0x9DD},     {0x9DF, 0x9E1},     {0x9F0, 0x9F1},
    {0x9FC, 0x9FC},     {0xA05, 0xA0A},     {0xA0F, 0xA10},     {0xA13, 0xA28},
    {0xA2A, 0xA30},     {0xA32, 0xA33},     {0xA35, 0xA36},     {0xA38, 0xA39},
    {0xA59, 0xA5C},     {0xA5E, 0xA5E},     {0xA72, 0xA74},     {0xA85, 0xA8D},
    {0xA8F, 0xA91},     {0xA93, 0xAA8},     {0xAAA, 0xAB0},     {0xAB2, 0xAB3},
    {0xAB5, 0xAB9},     {0xABD, 0xABD},     {0xAD0, 0xAD0},     {0xAE0, 0xAE1},
    {0xAF9, 0xAF9},     {0xB05, 0xB0C},     {0xB0F, 0xB10},     {0xB13, 0xB28},
    {0xB2A, 0xB30},     {0xB32, 0xB33},     {0xB35, 0xB39},     {0xB3D, 0xB3D},
    {0xB5C, 0xB5D},     {0xB5F, 0xB61},     {0xB71, 0xB71},     {0xB83, 0xB83},
    {0xB85, 0xB8A},     {0xB8E, 0xB90},     {0xB92, 0xB95},     {0xB99, 0xB9A},
    {0xB9C, 0xB9C},     {0xB9E, 0xB9F},     {0xBA3, 0xBA4},     {0xBA8, 0xBAA},
    {0xBAE, 0xBB9},     {0xBD0, 0xBD0},     {0xC05, 0xC0C},     {0xC0E, 0xC10},
    {0xC12, 0xC28},     {0xC2A, 0xC39},     {0xC3D, 0xC3D},     {0xC58, 0xC5A},
    {0xC5D, 0xC5D},     {0xC60, 0xC61},     {0xC80, 0xC80},     {0xC85, 0xC8C},
    {0xC8E, 0xC90},     {0xC92, 0xCA8},     {0xCAA, 0xCB3},     {0xCB5, 0xCB9},
    {0xCBD, 0xCBD},     {0xCDD, 0xCDE},     {0xCE0, 0xCE1},     {0xCF1, 0xCF2},
    {0xD04, 0xD0C},     {0xD0E, 0xD10},     {0xD12, 0xD3A},     {0xD3D, 0xD3D},
    {0xD4E, 0xD4E},     {0xD54, 0xD56},     {0xD5F, 0xD61},     {0xD7A, 0xD7F},
    {0xD85, 0xD96},     {0xD9A, 0xDB1},     {0xDB3, 0xDBB},     {0xDBD, 0xDBD},
    {0xDC0, 0xDC6},     {0xE01, 0xE30},     {0xE32, 0xE33},     {0xE40, 0xE46},
    {0xE81, 0xE82},     {0xE84, 0xE84},     {0xE86, 0xE8A},     {0xE8C, 0xEA3},
    {0xEA5, 0xEA5},     {0xEA7, 0xEB0},     {0xEB2, 0xEB3},     {0xEBD, 0xEBD},
    {0xEC0, 0xEC4},     {0xEC6, 0xEC6},     {0xEDC, 0xEDF},     {0xF00, 0xF00},
    {0xF40, 0xF47},     {0xF49, 0xF6C},     {0xF88, 0xF8C},     {0x1000, 0x102A},
    {0x103F, 0x103F},   {0x1050, 0x1055},   {0x105A, 0x105D},   {0x1061, 0x1061},
    {0x1065, 0x1066},   {0x106E, 0x1070},   {0x1075, 0x1081},   {0x108E, 0x108E},
    {0x10A0, 0x10C5},   {0x10C7, 0x10C7},   {0x10CD, 0x10CD},   {0x10D0, 0x10FA},
    {0x10FC, 0x1248},   {0x124A, 0x124D},   {0x1250, 0x1256},   {0x1258, 0x1258},
    {0x125A, 0x125D},   {0x1260, 0x1288},   {0x128A, 0x128D},   {0x1290, 0x12B0},
    {0x12B2, 0x12B5},   {0x12B8, 0x12BE},   {0x12C0, 0x12C0},   {0x12C2, 0x12C5},
    {0x12C8, 0x12D6},   {0x12D8, 0x1310},   {0x1312, 0x1315},   {0x1318, 0x135A},
    {0x1380, 0x138F},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},   {0x1401, 0x166C},
    {0x166F, 0x167F},   {0x1681, 0x169A},   {0x16A0, 0x16EA},   {0x16F1, 0x16F8},
    {0x1700, 0x1711},   {0x171F, 0x1731},   {0x1740, 0x1751},   {0x1760, 0x176C},
    {0x176E, 0x1770},   {0x1780, 0x17B3},   {0x17D7, 0x17D7},   {0x17DC, 0x17DC},
    {0x1820, 0x1878},   {0x1880, 0x1884},   {0x1887, 0x18A8},   {0x18AA, 0x18AA},
    {0x18B0, 0x18F5},   {0x1900, 0x191E},   {0x1950, 0x196D},   {0x1970, 0x1974},
    {0x1980, 0x19AB},   {0x19B0, 0x19C9},   {0x1A00, 0x1A16},   {0x1A20, 0x1A54},
    {0x1AA7, 0x1AA7},   {0x1B05, 0x1B33},   {0x1B45, 0x1B4C},   {0x1B83, 0x1BA0},
    {0x1BAE, 0x1BAF},   {0x1BBA, 0x1BE5},   {0x1C00, 0x1C23},   {0x1C4D, 0x1C4F},
    {0x1C5A, 0x1C7D},   {0x1C80, 0x1C88},   {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},
    {0x1CE9, 0x1CEC},   {0x1CEE, 0x1CF3},   {0x1CF5, 0x1CF6},   {0x1CFA, 0x1CFA},
    {0x1D00, 0x1DBF},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2071, 0x2071},   {0x207F, 0x207F},   {0x2090, 0x209C},   {0x2102, 0x2102},
    {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211D},
    {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},   {0x212A, 0x212D},
    {0x212F, 0x2139},   {0x213C, 0x213F},   {0x2145, 0x2149},   {0x214E, 0x214E},
    {0x2183, 0x2184},   {0x2C00, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},
    {0x2D00, 0x2D25},   {0x2D27, 0x2D27},   {0x2D2D, 0x2D2D},   {0x2D30, 0x2D67},
    {0x2D6F, 0x2D6F},   {0x2D80, 0x2D96},   {0x2DA0, 0x2DA6},   {0x2DA8, 0x2DAE},
    {0x2DB0, 0x2DB6},   {0x2DB8, 0x2DBE},   {0x2DC0, 0x2DC6},   {0x2DC8, 0x2DCE},
    {0x2DD0, 0x2DD6},   {0x2DD8, 0x2DDE},   {0x2E2F, 0x2E2F},   {0x3005, 0x3006},
    {0x3031, 0x3035},   {0x303B, 0x303C},   {0x3041, 0x3096},   {0x309D, 0x309F},
    {0x30A1, 0x30FA},   {0x30FC, 0x30FF},   {0x3105, 0x312F},   {0x3131, 0x318E},
    {0x31A0, 0x31BF},   {0x31F0, 0x31FF},   {0x3400, 0x4DBF},   {0x4E00, 0xA48C},
    {0xA4D0, 0xA4FD},   {0xA500, 0xA60C},   {0xA610, 0xA61F},   {0xA62A, 0xA62B},
    {0xA640, 0xA66E},   {0xA67F, 0xA69D},   {0xA6A0, 0xA6E5},   {0xA717, 0xA71F},
    {0xA722, 0xA788},   {0xA78B, 0xA7CA},   {0xA7D0, 0xA7D1},   {0xA7D3, 0xA7D3},
    {0xA7D5, 0xA7D9},   {0xA7F2, 0xA801},   {0xA803, 0xA805},   {0xA807, 0xA80A},
    {0xA80C, 0xA822},   {0xA840, 0xA873},   {0xA882, 0xA8B3},   {0xA8F2, 0xA8F7},
    {0xA8FB, 0xA8FB},   {0xA8FD, 0xA8FE},   {0xA90A, 0xA925},   {0xA930, 0xA946},
    {0xA960, 0xA97C},   {0xA984, 0xA9B2},   {0xA9CF, 0xA9CF},   {0xA9E0, 0xA9E4},
    {0xA9E6, 0xA9EF},   {0xA9FA, 0xA9FE},   {0xAA00, 0xAA28},   {0xAA40, 0xAA42},
    {0xAA44, 0xAA4B},   {0xAA60, 0xAA76},   {0xAA7A, 0xAA7A},   {0xAA7E, 0xAAAF},
    {0xAAB1, 0xAAB1},   {0xAAB5, 0xAAB6},   {0xAAB9, 0xAABD},   {0xAAC0, 0xAAC0},
    {0xAAC2, 0xAAC2},   {0xAADB, 0xAADD},   {0xAAE0, 0xAAEA},   {0xAAF2, 0xAAF4},
    {0xAB01, 0xAB06},   {0xAB09, 0xAB0E},   {0xAB11, 0xAB16},   {0xAB20, 0xAB26},
    {0xAB28, 0xAB2E},   {0xAB30, 0xAB5A},   {0xAB5C, 0xAB69},   {0xAB70, 0xABE2},
    {0xAC00, 0xD7A3},   {0xD7B0, 0xD7C6},   {0xD7CB, 0xD7FB},   {0xF900, 0xFA6D},
    {0xFA70, 0xFAD9},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFB1D, 0xFB1D},
    {0xFB1F, 0xFB28},   {0xFB2A, 0xFB36},   {0xFB38, 0xFB3C},   {0xFB3E, 0xFB3E},
    {0xFB40, 0xFB41},   {0xFB43, 0xFB44},   {0xFB46, 0xFBB1},   {0xFBD3, 0xFD3D},
    {0xFD50, 0xFD8F},   {0xFD92, 0xFDC7},   {0xFDF0, 0xFDFB},   {0xFE70, 0xFE74},
    {0xFE76, 0xFEFC},   {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},   {0xFF66, 0xFFBE},
    {0xFFC2, 0xFFC7},   {0xFFCA, 0xFFCF},   {0xFFD2, 0xFFD7},   {0xFFDA, 0xFFDC},
    {0x10000, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A}, {0x1003C, 0x1003D},
    {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA}, {0x10280, 0x1029C},
    {0x102A0, 0x102D0}, {0x10300, 0x1031F}, {0x1032D, 0x10340}, {0x10342, 0x10349},
    {0x10350, 0x10375}, {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF},
    {0x10400, 0x1049D}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10500, 0x10527},
    {0x10530, 0x10563}, {0x10570, 0x1057A}, {0x1057C, 0x1058A}, {0x1058C, 0x10592},
    {0x10594, 0x10595}, {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9},
    {0x105BB, 0x105BC}, {0x10600, 0x10736}, {0x10740, 0x10755}, {0x10760, 0x10767},
    {0x10780, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x10800, 0x10805},
    {0x10808, 0x10808}, {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C},
    {0x1083F, 0x10855}, {0x10860, 0x10876}, {0x10880, 0x1089E}, {0x108E0, 0x108F2},
    {0x108F4, 0x108F5}, {0x10900, 0x10915}, {0x10920, 0x10939}, {0x10980, 0x109B7},
    {0x109BE, 0x109BF}, {0x10A00, 0x10A00}, {0x10A10, 0x10A13}, {0x10A15, 0x10A17},
    {0x10A19, 0x10A35}, {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7},
    {0x10AC9, 0x10AE4}, {0x10B00, 0x10B35}, {0x10B40, 0x10B55}, {0x10B60, 0x10B72},
    {0x10B80, 0x10B91}, {0x10C00, 0x10C48}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
    {0x10D00, 0x10D23}, {0x10E80, 0x10EA9}, {0x10EB0, 0x10EB1}, {0x10F00, 0x10F1C},
    {0x10F27, 0x10F27}, {0x10F30, 0x10F45}, {0x10F70, 0x10F81}, {0x10FB0, 0x10FC4},
    {0x10FE0, 0x10FF6}, {0x11003, 0x11037}, {0x11071, 0x11072}, {0x11075, 0x11075},
    {0x11083, 0x110AF}, {0x110D0, 0x110E8}, {0x11103, 0x11126}, {0x11144, 0x11144},
    {0x11147, 0x11147}, {0x11150, 0x11172}, {0x11176, 0x11176}, {0x11183, 0x111B2},
    {0x111C1, 0x111C4}, {0x111DA, 0x111DA}, {0x111DC, 0x111DC}, {0x11200, 0x11211},
    {0x11213, 0x1122B}, {0x11280, 0x11286}, {0x11288, 0x11288}, {0x1128A, 0x1128D},
    {0x1128F, 0x1129D}, {0x1129F, 0x112A8}, {0x112B0, 0x112DE}, {0x11305, 0x1130C},
    {0x1130F, 0x11310}, {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333},
    {0x11335, 0x11339}, {0x1133D, 0x1133D}, {0x11350, 0x11350}, {0x1135D, 0x11361},
    {0x11400, 0x11434}, {0x11447, 0x1144A}, {0x1145F, 0x11461}, {0x11480, 0x114AF},
    {0x114C4, 0x114C5}, {0x114C7, 0x114C7}, {0x11580, 0x115AE}, {0x115D8, 0x115DB},
    {0x11600, 0x1162F}, {0x11644, 0x11644}, {0x11680, 0x116AA}, {0x116B8, 0x116B8},
    {0x11700, 0x1171A}, {0x11740, 0x11746}, {0x11800, 0x1182B}, {0x118A0, 0x118DF},
    {0x118FF, 0x11906}, {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916},
    {0x11918, 0x1192F}, {0x1193F, 0x1193F}, {0x11941, 0x11941}, {0x119A0, 0x119A7},
    {0x119AA, 0x119D0}, {0x119E1, 0x119E1}, {0x119E3, 0x119E3}, {0x11A00, 0x11A00},
    {0x11A0B, 0x11A32}, {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89},
    {0x11A9D, 0x11A9D}, {0x11AB0, 0x11AF8}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C2E},
    {0x11C40, 0x11C40}, {0x11C72, 0x11C8F}, {0x11D00, 0x11D06}, {0x11D08, 0x11D09},
    {0x11D0B, 0x11D30}, {0x11D46, 0x11D46}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68},
    {0x11D6A, 0x11D89}, {0x11D98, 0x11D98}, {0x11EE0, 0x11EF2}, {0x11FB0, 0x11FB0},
    {0x12000, 0x12399}, {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342E},
    {0x14400, 0x14646}, {0x16800, 0x16A38}, {0x16A40, 0x16A5E}, {0x16A70, 0x16ABE},
    {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F}, {0x16B40, 0x16B43}, {0x16B63, 0x16B77},
    {0x16B7D, 0x16B8F}, {0x16E40, 0x16E7F}, {0x16F00, 0x16F4A}, {0x16F50, 0x16F50},
    {0x16F93, 0x16F9F}, {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE3}, {0x17000, 0x187F7},
    {0x18800, 0x18CD5}, {0x18D00, 0x18D08}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB},
    {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122}, {0x1B150, 0x1B152}, {0x1B164, 0x1B167},
    {0x1B170, 0x1B2FB}, {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88},
    {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454}, {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F},
    {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC}, {0x1D4AE, 0x1D4B9},
    {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A},
    {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E},
    {0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5},
    {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714},
    {0x1D716, 0x1D734}, {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E}, {0x1D770, 0x1D788},
    {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2}, {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E},
    {0x1E100, 0x1E12C}, {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E}, {0x1E290, 0x1E2AD},
    {0x1E2C0, 0x1E2EB}, {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB}, {0x1E7ED, 0x1E7EE},
    {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4}, {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B},
    {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24},
    {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39},
    {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42}, {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49},
    {0x1EE4B, 0x1EE4B}, {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54},
    {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59}, {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D},
    {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A},
    {0x1EE6C, 0x1EE72}, {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E},
    {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B}, {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9},
    {0x1EEAB, 0x1EEBB}, {0x20000, 0x2A6DF}, {0x2A700, 0x2B738}, {0x2B740, 0x2B81D},
    {0x2B820, 0x2CEA1}, {0x2CEB0, 0x2EBE0}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A},
};
constexpr Range kNumbers[] = {
    {0x30, 0x39},       {0xB2, 0xB3},       {0xB9, 0xB9},       {0xBC, 0xBE},
    {0x660, 0x669},     {0x6F0, 0x6F9},     {0x7C0, 0x7C9},     {0x966, 0x96F},
    {0x9E6, 0x9EF},     {0x9F4, 0x9F9},     {0xA66, 0xA6F},     {0xAE6, 0xAEF},
    {0xB66, 0xB6F},     {0xB72, 0xB77},     {0xBE6, 0xBF2},     {0xC66, 0xC6F},
    {0xC78, 0xC7E},     {0xCE6, 0xCEF},     {0xD58, 0xD5E},     {0xD66, 0xD78},
    {0xDE6, 0xDEF},     {0xE50, 0xE59},     {0xED0, 0xED9},     {0xF20, 0xF33},
    {0x1040, 0x1049},   {0x1090, 0x1099},   {0x1369, 0x137C},   {0x16EE, 0x16F0},
    {0x17E0, 0x17E9},   {0x17F0, 0x17F9},   {0x1810, 0x1819},   {0x1946, 0x194F},
    {0x19D0, 0x19DA},   {0x1A80, 0x1A89},   {0x1A90, 0x1A99},   {0x1B50, 0x1B59},
    {0x1BB0, 0x1BB9},   {0x1C40, 0x1C49},   {0x1C50, 0x1C59},   {0x2070, 0x2070},
    {0x2074, 0x2079},   {0x2080, 0x2089},   {0x2150, 0x2182},   {0x2185, 0x2189},
    {0x2460, 0x249B},   {0x24EA, 0x24FF},   {0x2776, 0x2793},   {0x2CFD, 0x2CFD},
    {0x3007, 0x3007},   {0x3021, 0x3029},   {0x3038, 0x303A},   {0x3192, 0x3195},
    {0x3220, 0x3229},   {0x3248, 0x324F},   {0x3251, 0x325F},   {0x3280, 0x3289},
    {0x32B1, 0x32BF},   {0xA620, 0xA629},   {0xA6E6, 0xA6EF},   {0xA830, 0xA835},
    {0xA8D0, 0xA8D9},   {0xA900, 0xA909},   {0xA9D0, 0xA9D9},   {0xA9F0, 0xA9F9},
    {0xAA50, 0xAA59},   {0xABF0, 0xABF9},   {0xFF10, 0xFF19},   {0x10107, 0x10133},
    {0x10140, 0x10178}, {0x1018A, 0x1018B}, {0x102E1, 0x102FB}, {0x10320, 0x10323},
    {0x10341, 0x10341}, {0x1034A, 0x1034A}, {0x103D1, 0x103D5}, {0x104A0, 0x104A9},
    {0x10858, 0x1085F}, {0x10879, 0x1087F}, {0x108A7, 0x108AF}, {0x108FB, 0x108FF},
    {0x10916, 0x1091B}, {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF},
    {0x10A40, 0x10A48}, {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF},
    {0x10B58, 0x10B5F}, {0x10B78, 0x10B7F}, {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF},
    {0x10D30, 0x10D39}, {0x10E60, 0x10E7E}, {0x10F1D, 0x10F26}, {0x10F51, 0x10F54},
    {0x10FC5, 0x10FCB}, {0x11052, 0x1106F}, {0x110F0, 0x110F9}, {0x11136, 0x1113F},
    {0x111D0, 0x111D9}, {0x111E1, 0x111F4}, {0x112F0, 0x112F9}, {0x11450, 0x11459},
    {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x11730, 0x1173B},
    {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11C50, 0x11C6C}, {0x11D50, 0x11D59},
    {0x11DA0, 0x11DA9}, {0x11FC0, 0x11FD4}, {0x12400, 0x1246E}, {0x16A60, 0x16A69},
    {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61}, {0x16E80, 0x16E96},
    {0x1D2E0, 0x1D2F3}, {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149},
    {0x1E2F0, 0x1E2F9}, {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB},
    {0x1ECAD, 0x1ECAF}, {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D}, {0x1ED2F, 0x1ED3D},
    {0x1F100, 0x1F10C}, {0x1FBF0, 0x1FBF9},
};

bool in_ranges(const Range* begin, const Range* end, uint32_t cp) {
  const Range* it =
      std::upper_bound(begin, end, cp, [](uint32_t v, const Range& r) { return v < r.lo; });
  return it != begin && cp <= (it - 1)->hi;
}
bool is_letter(uint32_t cp) {
  if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
  return in_ranges(std::begin(kLetters), std::end(kLetters), cp);
}
bool is_number(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(std::begin(kNumbers), std::end(kNumbers), cp);
}
// Unicode White_Space (what \s matches in the regex engines tokenizers uses).
bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

constexpr uint32_t kInvalid = 0xFFFFFFFF;  // a byte that is not valid UTF-8: "other"

// Decodes one UTF-8 character at s[i]; returns its length (1 for an invalid byte, cp = kInvalid).
size_t utf8_next(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = 0;
  uint32_t v = 0;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    n = 2;
    v = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3;
    v = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4;
    v = c & 0x07;
  } else {
    *cp = kInvalid;
    return 1;
  }
  if (i + n > s.size()) {
    *cp = kInvalid;
    return 1;
  }
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) {
      *cp = kInvalid;
      return 1;
    }
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[n] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
    *cp = kInvalid;
    return 1;
  }
  *cp = v;
  return n;
}

std::string utf8_encode(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

// The text as characters: code point and byte range.
struct Char {
  uint32_t cp;
  size_t begin, end;
};
std::vector<Char> chars_of(std::string_view s) {
  std::vector<Char> out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    const size_t n = utf8_next(s, i, &cp);
    out.push_back({cp, i, i + n});
    i += n;
  }
  return out;
}

// ---- the pre-tokenizer regexes, hand-written -------------------------------------------------
// GPT-2:    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Llama 3:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Alternatives are tried in order at each position (first match wins, as in the regex engines).
enum class Pattern { Gpt2, Llama3 };

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

bool is_l(const std::vector<Char>& c, size_t i) {
  return i < c.size() && is_letter(c[i].cp);
}
bool is_n(const std::vector<Char>& c, size_t i) {
  return i < c.size() && is_number(c[i].cp);
}
bool is_s(const std::vector<Char>& c, size_t i) {
  return i < c.size() && is_space(c[i].cp);
}
bool is_other(const std::vector<Char>& c, size_t i) {
  return i < c.size() && !is_space(c[i].cp) && !is_letter(c[i].cp) && !is_number(c[i].cp);
}
bool is_nl(const std::vector<Char>& c, size_t i) {
  return i < c.size() && (c[i].cp == '\r' || c[i].cp == '\n');
}

// Length (in characters) of a contraction at i ('s 't 're 've 'm 'll 'd), 0 if none.
size_t contraction(const std::vector<Char>& c, size_t i, bool ignore_case) {
  if (i >= c.size() || c[i].cp != '\'') return 0;
  const auto at = [&](size_t k) -> uint32_t {
    if (k >= c.size()) return 0;
    uint32_t v = c[k].cp;
    if (ignore_case && v >= 'A' && v <= 'Z') v += 32;
    return v;
  };
  const uint32_t a = at(i + 1), b = at(i + 2);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// \s+(?!\S) then \s+ : a whitespace run, less its last character when a non-space follows.
size_t whitespace_run(const std::vector<Char>& c, size_t i) {
  size_t j = i;
  while (is_s(c, j)) ++j;
  if (j == i) return 0;
  if (j < c.size() && j - i > 1) return j - 1 - i;
  return j - i;
}

size_t match_gpt2(const std::vector<Char>& c, size_t i) {
  if (size_t n = contraction(c, i, false)) return n;
  const size_t sp = (c[i].cp == ' ') ? 1 : 0;
  for (auto cls : {is_l, is_n, is_other}) {
    size_t start = i;
    if (sp && cls(c, i + 1)) start = i + 1;
    if (!cls(c, start)) continue;
    size_t j = start;
    while (cls(c, j)) ++j;
    return j - i;
  }
  if (size_t n = whitespace_run(c, i)) return n;
  return 1;
}

size_t match_llama3(const std::vector<Char>& c, size_t i) {
  if (size_t n = contraction(c, i, true)) return n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  {
    size_t start = i;
    if (!is_nl(c, i) && !is_l(c, i) && !is_n(c, i) && is_l(c, i + 1)) start = i + 1;
    if (is_l(c, start)) {
      size_t j = start;
      while (is_l(c, j)) ++j;
      return j - i;
    }
  }
  // \p{N}{1,3}
  if (is_n(c, i)) {
    size_t j = i;
    while (j < i + 3 && is_n(c, j)) ++j;
    return j - i;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  {
    size_t start = i;
    if (c[i].cp == ' ' && is_other(c, i + 1)) start = i + 1;
    if (is_other(c, start)) {
      size_t j = start;
      while (is_other(c, j)) ++j;
      while (is_nl(c, j)) ++j;
      return j - i;
    }
  }
  // \s*[\r\n]+ : up to the last newline of the whitespace run.
  {
    size_t j = i, last_nl = c.size();
    while (is_s(c, j)) {
      if (is_nl(c, j)) last_nl = j;
      ++j;
    }
    if (last_nl != c.size()) return last_nl + 1 - i;
  }
  if (size_t n = whitespace_run(c, i)) return n;
  return 1;
}

std::vector<std::string> regex_split(const std::string& s, Pattern p) {
  const std::vector<Char> c = chars_of(s);
  std::vector<std::string> out;
  for (size_t i = 0; i < c.size();) {
    const size_t n = p == Pattern::Gpt2 ? match_gpt2(c, i) : match_llama3(c, i);
    out.push_back(s.substr(c[i].begin, c[i + n - 1].end - c[i].begin));
    i += n;
  }
  return out;
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256 + k.
struct ByteMap {
  std::string to_char[256];
  std::unordered_map<uint32_t, unsigned char> from_cp;
  ByteMap() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = keep ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + extra++);
      to_char[b] = utf8_encode(cp);
      from_cp[cp] = static_cast<unsigned char>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

int parse_byte_token(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int v = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char ch = p[i];
    int d = -1;
    if (ch >= '0' && ch <= '9') d = ch - '0';
    if (ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  while (true) {
    const size_t k = s.find(from, i);
    if (k == std::string::npos) break;
    out.append(s, i, k - i);
    out += to;
    i = k + from.size();
  }
  out.append(s, i, std::string::npos);
  s = std::move(out);
}

}  // namespace

// ---- the parsed tokenizer ----------------------------------------------------------------------

struct HfTokenizer::State {
  struct Added {
    std::string content;
    int id = 0;
    bool special = false, normalized = false, lstrip = false, rstrip = false;
  };
  struct Norm {
    enum Kind { Prepend, Replace } kind;
    std::string a, b;
  };
  struct Pre {
    enum Kind { ByteLevel, Metaspace, Split, Digits } kind;
    bool add_prefix_space = false, use_regex = true;       // ByteLevel
    std::string replacement;                               // Metaspace
    enum Scheme { Always, First, Never } scheme = Always;  // Metaspace
    bool split = true;                                     // Metaspace
    Pattern pattern = Pattern::Gpt2;                       // Split, ByteLevel's regex
    bool individual_digits = false;                        // Digits
  };
  struct Dec {
    enum Kind { ByteLevel, Replace, ByteFallback, Strip, Metaspace } kind;
    std::string a, b;  // Replace: from, to; Strip: content; Metaspace: replacement
    int start = 0;     // Strip: characters stripped at the start
  };

  std::string source;
  std::unordered_map<std::string, int> vocab;
  std::vector<std::string> tokens;  // id -> token text (added tokens included)
  std::unordered_map<uint64_t, std::pair<int, int>> merges;  // (a, b) -> (rank, merged id)
  bool byte_fallback = false, fuse_unk = false, ignore_merges = false;
  int unk_id = -1;
  std::vector<Added> added;
  std::unordered_map<int, size_t> added_by_id;
  std::vector<Norm> normalizers;
  std::vector<Pre> pre_tokenizers;
  std::vector<Dec> decoders;
  bool byte_level = false;
  int bos = -1, eos = -1;

  static uint64_t key(int a, int b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  [[noreturn]] void bad(const std::string& field, const std::string& value,
                        const std::string& allowed) const {
    fail(source + ": " + field, value, allowed);
  }
};

namespace {

using State = HfTokenizer::State;

std::string short_dump(const json& j) {
  std::string s = j.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

std::string get_string(const State& st, const json& obj, const char* key, const std::string& where,
                       const std::string& fallback, bool required) {
  if (!obj.contains(key) || obj[key].is_null()) {
    if (required) st.bad(where + "." + key, "absent", "must be a string");
    return fallback;
  }
  if (!obj[key].is_string()) st.bad(where + "." + key, short_dump(obj[key]), "must be a string");
  return obj[key].get<std::string>();
}

bool get_bool(const State& st, const json& obj, const char* key, const std::string& where,
              bool fallback) {
  if (!obj.contains(key) || obj[key].is_null()) return fallback;
  if (!obj[key].is_boolean()) st.bad(where + "." + key, short_dump(obj[key]), "must be a boolean");
  return obj[key].get<bool>();
}

std::string type_of(const State& st, const json& obj, const std::string& where) {
  if (!obj.is_object()) st.bad(where, short_dump(obj), "must be an object with a \"type\"");
  return get_string(st, obj, "type", where, "", true);
}

// "String" patterns only (a Regex pattern in a normalizer or decoder is not supported).
std::string string_pattern(const State& st, const json& obj, const std::string& where) {
  if (!obj.contains("pattern") || !obj["pattern"].is_object() ||
      !obj["pattern"].contains("String") || !obj["pattern"]["String"].is_string()) {
    st.bad(where + ".pattern", obj.contains("pattern") ? short_dump(obj["pattern"]) : "absent",
           "only {\"String\": \"...\"} patterns are supported");
  }
  return obj["pattern"]["String"].get<std::string>();
}

void parse_normalizer(State& st, const json& n, const std::string& where) {
  if (n.is_null()) return;
  const std::string type = type_of(st, n, where);
  if (type == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array()) {
      st.bad(where + ".normalizers", "absent", "a Sequence needs an array of normalizers");
    }
    for (size_t i = 0; i < n["normalizers"].size(); ++i) {
      parse_normalizer(st, n["normalizers"][i], where + ".normalizers[" + std::to_string(i) + "]");
    }
  } else if (type == "Prepend") {
    st.normalizers.push_back(
        {State::Norm::Prepend, get_string(st, n, "prepend", where, "", true), ""});
  } else if (type == "Replace") {
    const std::string from = string_pattern(st, n, where);
    if (from.empty()) st.bad(where + ".pattern", "\"\"", "must not be empty");
    st.normalizers.push_back(
        {State::Norm::Replace, from, get_string(st, n, "content", where, "", true)});
  } else if (type == "NFC" || type == "NFKC") {
    // Identity (documented approximation): exact for text already in that form.
  } else {
    st.bad(where + ".type", "\"" + type + "\"",
           "supported normalizers are Sequence, Prepend, Replace, NFC, NFKC");
  }
}

void parse_pre_tokenizer(State& st, const json& p, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = type_of(st, p, where);
  State::Pre pre{};
  if (type == "Sequence") {
    if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array()) {
      st.bad(where + ".pretokenizers", "absent", "a Sequence needs an array of pre-tokenizers");
    }
    for (size_t i = 0; i < p["pretokenizers"].size(); ++i) {
      parse_pre_tokenizer(st, p["pretokenizers"][i],
                          where + ".pretokenizers[" + std::to_string(i) + "]");
    }
    return;
  } else if (type == "ByteLevel") {
    pre.kind = State::Pre::ByteLevel;
    pre.add_prefix_space = get_bool(st, p, "add_prefix_space", where, true);
    pre.use_regex = get_bool(st, p, "use_regex", where, true);
    st.byte_level = true;
  } else if (type == "Metaspace") {
    pre.kind = State::Pre::Metaspace;
    pre.replacement = get_string(st, p, "replacement", where, "\xE2\x96\x81", false);
    uint32_t cp = 0;
    if (pre.replacement.empty() || utf8_next(pre.replacement, 0, &cp) != pre.replacement.size() ||
        cp == kInvalid) {
      st.bad(where + ".replacement", "\"" + pre.replacement + "\"", "must be one character");
    }
    pre.split = get_bool(st, p, "split", where, true);
    std::string scheme = get_string(st, p, "prepend_scheme", where, "", false);
    if (scheme.empty())
      scheme = get_bool(st, p, "add_prefix_space", where, true) ? "always" : "never";
    if (scheme == "always") {
      pre.scheme = State::Pre::Always;
    } else if (scheme == "first") {
      pre.scheme = State::Pre::First;
    } else if (scheme == "never") {
      pre.scheme = State::Pre::Never;
    } else {
      st.bad(where + ".prepend_scheme", "\"" + scheme + "\"", "must be always, first or never");
    }
  } else if (type == "Split") {
    pre.kind = State::Pre::Split;
    std::string pattern;
    if (p.contains("pattern") && p["pattern"].is_object() && p["pattern"].contains("Regex") &&
        p["pattern"]["Regex"].is_string()) {
      pattern = p["pattern"]["Regex"].get<std::string>();
    }
    if (pattern == kGpt2Pattern) {
      pre.pattern = Pattern::Gpt2;
    } else if (pattern == kLlama3Pattern) {
      pre.pattern = Pattern::Llama3;
    } else {
      st.bad(where + ".pattern", p.contains("pattern") ? short_dump(p["pattern"]) : "absent",
             "only the GPT-2 and Llama-3 pre-tokenizer regexes are supported");
    }
    const std::string behavior = get_string(st, p, "behavior", where, "Isolated", false);
    if (behavior != "Isolated") {
      st.bad(where + ".behavior", "\"" + behavior + "\"", "only Isolated is supported");
    }
    if (get_bool(st, p, "invert", where, false)) {
      st.bad(where + ".invert", "true", "only invert: false is supported");
    }
  } else if (type == "Digits") {
    pre.kind = State::Pre::Digits;
    pre.individual_digits = get_bool(st, p, "individual_digits", where, false);
  } else {
    st.bad(where + ".type", "\"" + type + "\"",
           "supported pre-tokenizers are Sequence, ByteLevel, Metaspace, Split, Digits");
  }
  st.pre_tokenizers.push_back(pre);
}

void parse_decoder(State& st, const json& d, const std::string& where) {
  if (d.is_null()) return;
  const std::string type = type_of(st, d, where);
  if (type == "Sequence") {
    if (!d.contains("decoders") || !d["decoders"].is_array()) {
      st.bad(where + ".decoders", "absent", "a Sequence needs an array of decoders");
    }
    for (size_t i = 0; i < d["decoders"].size(); ++i) {
      parse_decoder(st, d["decoders"][i], where + ".decoders[" + std::to_string(i) + "]");
    }
  } else if (type == "ByteLevel") {
    st.decoders.push_back({State::Dec::ByteLevel, "", "", 0});
    st.byte_level = true;
  } else if (type == "Replace") {
    st.decoders.push_back({State::Dec::Replace, string_pattern(st, d, where),
                           get_string(st, d, "content", where, "", true), 0});
  } else if (type == "ByteFallback") {
    st.decoders.push_back({State::Dec::ByteFallback, "", "", 0});
  } else if (type == "Fuse") {
    // Decoding concatenates the pieces anyway.
  } else if (type == "Strip") {
    const std::string content = get_string(st, d, "content", where, " ", false);
    const json start = d.value("start", json(0));
    if (!start.is_number_integer() || start.get<long long>() < 0 || start.get<long long>() > 16) {
      st.bad(where + ".start", short_dump(start), "must be an integer in [0, 16]");
    }
    st.decoders.push_back({State::Dec::Strip, content, "", start.get<int>()});
  } else if (type == "Metaspace") {
    std::string scheme = get_string(st, d, "prepend_scheme", where, "", false);
    if (scheme.empty())
      scheme = get_bool(st, d, "add_prefix_space", where, true) ? "always" : "never";
    st.decoders.push_back({State::Dec::Metaspace,
                           get_string(st, d, "replacement", where, "\xE2\x96\x81", false), "",
                           scheme == "never" ? 0 : 1});
  } else {
    st.bad(where + ".type", "\"" + type + "\"",
           "supported decoders are Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse, "
           "Strip");
  }
}

int id_of(const State& st, const std::string& token, const std::string& where) {
  const auto it = st.vocab.find(token);
  if (it == st.vocab.end()) st.bad(where, "\"" + token + "\"", "is not in model.vocab");
  return it->second;
}

void parse_model(State& st, const json& m) {
  const std::string type = type_of(st, m, "model");
  if (type != "BPE") {
    st.bad("model.type", "\"" + type + "\"",
           "only BPE tokenizers are supported (not WordPiece, Unigram or WordLevel)");
  }
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    st.bad("model.vocab", m.contains("vocab") ? short_dump(m["vocab"]) : "absent",
           "must be an object {token: id}");
  }
  int max_id = -1;
  for (const auto& [token, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<long long>() < 0 || id.get<long long>() >= (1 << 24)) {
      st.bad("model.vocab[\"" + token + "\"]", short_dump(id), "must be an integer in [0, 2^24)");
    }
    st.vocab[token] = id.get<int>();
    max_id = std::max(max_id, id.get<int>());
  }
  st.tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  std::vector<bool> seen(st.tokens.size(), false);
  for (const auto& [token, id] : st.vocab) {
    if (seen[static_cast<size_t>(id)]) {
      st.bad("model.vocab", "id " + std::to_string(id), "is given to two tokens");
    }
    seen[static_cast<size_t>(id)] = true;
    st.tokens[static_cast<size_t>(id)] = token;
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(k) && !m[k].is_null() &&
        !(m[k].is_string() && m[k].get<std::string>().empty())) {
      st.bad(std::string("model.") + k, short_dump(m[k]), "only null is supported");
    }
  }
  if (m.contains("dropout") && !m["dropout"].is_null()) {
    st.bad("model.dropout", short_dump(m["dropout"]), "only null is supported (deterministic)");
  }
  st.byte_fallback = get_bool(st, m, "byte_fallback", "model", false);
  st.fuse_unk = get_bool(st, m, "fuse_unk", "model", false);
  st.ignore_merges = get_bool(st, m, "ignore_merges", "model", false);
  const std::string unk = get_string(st, m, "unk_token", "model", "", false);
  if (!unk.empty()) st.unk_id = id_of(st, unk, "model.unk_token");
  const json merges = m.value("merges", json::array());
  if (!merges.is_array()) st.bad("model.merges", short_dump(merges), "must be an array");
  for (size_t r = 0; r < merges.size(); ++r) {
    const json& e = merges[r];
    const std::string where = "model.merges[" + std::to_string(r) + "]";
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() ||
          s.find(' ', sp + 1) != std::string::npos) {
        st.bad(where, short_dump(e), "a merge string must be two tokens separated by one space");
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      st.bad(where, short_dump(e), "must be \"a b\" or [\"a\", \"b\"]");
    }
    const int ia = id_of(st, a, where), ib = id_of(st, b, where);
    const int merged = id_of(st, a + b, where + " (merged)");
    st.merges.emplace(State::key(ia, ib), std::make_pair(static_cast<int>(r), merged));
  }
}

void parse_added(State& st, const json& added) {
  if (added.is_null()) return;
  if (!added.is_array()) st.bad("added_tokens", short_dump(added), "must be an array");
  for (size_t i = 0; i < added.size(); ++i) {
    const json& a = added[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!a.is_object()) st.bad(where, short_dump(a), "must be an object");
    State::Added t;
    t.content = get_string(st, a, "content", where, "", true);
    if (t.content.empty()) st.bad(where + ".content", "\"\"", "must not be empty");
    if (!a.contains("id") || !a["id"].is_number_integer() || a["id"].get<long long>() < 0 ||
        a["id"].get<long long>() >= (1 << 24)) {
      st.bad(where + ".id", a.contains("id") ? short_dump(a["id"]) : "absent",
             "must be an integer in [0, 2^24)");
    }
    t.id = a["id"].get<int>();
    t.special = get_bool(st, a, "special", where, false);
    t.normalized = get_bool(st, a, "normalized", where, !t.special);
    t.lstrip = get_bool(st, a, "lstrip", where, false);
    t.rstrip = get_bool(st, a, "rstrip", where, false);
    const size_t id = static_cast<size_t>(t.id);
    if (id >= st.tokens.size()) st.tokens.resize(id + 1);
    if (!st.tokens[id].empty() && st.tokens[id] != t.content) {
      st.bad(where + ".id", std::to_string(t.id),
             "is already the id of \"" + st.tokens[id] + "\" in model.vocab");
    }
    st.tokens[id] = t.content;
    st.added_by_id[t.id] = st.added.size();
    st.added.push_back(t);
  }
}

int find_added(const State& st, const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    for (const State::Added& a : st.added) {
      if (a.content == n) return a.id;
    }
  }
  return -1;
}

void choose_bos_eos(State& st, const json& post) {
  if (post.is_object() && post.value("type", "") == "TemplateProcessing" &&
      post.contains("single") && post["single"].is_array() && !post["single"].empty()) {
    const json& first = post["single"][0];
    if (first.is_object() && first.contains("SpecialToken") && first["SpecialToken"].is_object() &&
        first["SpecialToken"].contains("id") && first["SpecialToken"]["id"].is_string()) {
      const std::string name = first["SpecialToken"]["id"].get<std::string>();
      const auto it = st.vocab.find(name);
      if (it != st.vocab.end()) st.bos = it->second;
      if (st.bos < 0) st.bos = find_added(st, {name});
    }
  }
  if (st.bos < 0) st.bos = find_added(st, {"<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>"});
  st.eos = find_added(st, {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"});
}

// ---- encoding ---------------------------------------------------------------------------------

struct Piece {
  std::string text;
  int added_id = -1;      // >= 0: an added token, emitted as is
  bool at_start = false;  // begins at the start of the input (Metaspace prepend_scheme first)
};

bool ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Splits `text` on the added tokens with normalized == `normalized` (leftmost, then longest).
std::vector<Piece> split_added(const State& st, const std::string& text, bool normalized,
                               bool at_start) {
  std::vector<Piece> out;
  size_t from = 0;  // start of the pending plain text
  size_t i = 0;
  while (i < text.size()) {
    const State::Added* best = nullptr;
    for (const State::Added& a : st.added) {
      if (a.normalized != normalized) continue;
      if (text.compare(i, a.content.size(), a.content) == 0 &&
          (best == nullptr || a.content.size() > best->content.size())) {
        best = &a;
      }
    }
    if (best == nullptr) {
      ++i;
      continue;
    }
    size_t begin = i, end = i + best->content.size();
    if (best->lstrip) {
      while (begin > from && ascii_space(text[begin - 1])) --begin;
    }
    if (best->rstrip) {
      while (end < text.size() && ascii_space(text[end])) ++end;
    }
    if (begin > from) out.push_back({text.substr(from, begin - from), -1, at_start && from == 0});
    out.push_back({text.substr(begin, end - begin), best->id, false});
    from = i = end;
  }
  if (from < text.size()) out.push_back({text.substr(from), -1, at_start && from == 0});
  return out;
}

std::string normalize(const State& st, std::string s) {
  for (const State::Norm& n : st.normalizers) {
    if (n.kind == State::Norm::Prepend) {
      if (!s.empty()) s = n.a + s;
    } else {
      replace_all(s, n.a, n.b);
    }
  }
  return s;
}

void apply_pre(const State::Pre& p, const Piece& in, std::vector<Piece>& out) {
  std::string s = in.text;
  switch (p.kind) {
    case State::Pre::ByteLevel: {
      if (p.add_prefix_space && (s.empty() || s[0] != ' ')) s = " " + s;
      std::vector<std::string> parts;
      if (p.use_regex) {
        parts = regex_split(s, Pattern::Gpt2);
      } else {
        parts.push_back(s);
      }
      for (const std::string& part : parts) {
        std::string mapped;
        for (char c : part) mapped += byte_map().to_char[static_cast<unsigned char>(c)];
        out.push_back({mapped, -1, false});
      }
      return;
    }
    case State::Pre::Split:
      for (std::string& part : regex_split(s, p.pattern)) out.push_back({part, -1, false});
      return;
    case State::Pre::Metaspace: {
      replace_all(s, " ", p.replacement);
      const bool prepend =
          p.scheme == State::Pre::Always || (p.scheme == State::Pre::First && in.at_start);
      if (prepend && s.compare(0, p.replacement.size(), p.replacement) != 0) s = p.replacement + s;
      if (!p.split) {
        out.push_back({s, -1, false});
        return;
      }
      // Split before every replacement character (it stays with the text that follows).
      size_t start = 0;
      for (size_t k = s.find(p.replacement, 1); k != std::string::npos;
           k = s.find(p.replacement, k + 1)) {
        out.push_back({s.substr(start, k - start), -1, false});
        start = k;
      }
      out.push_back({s.substr(start), -1, false});
      return;
    }
    case State::Pre::Digits: {
      size_t start = 0;
      const auto digit = [&](size_t k) { return s[k] >= '0' && s[k] <= '9'; };
      for (size_t k = 0; k < s.size(); ++k) {
        const bool boundary =
            k > 0 && (digit(k) != digit(k - 1) || (p.individual_digits && digit(k)));
        if (boundary) {
          out.push_back({s.substr(start, k - start), -1, false});
          start = k;
        }
      }
      out.push_back({s.substr(start), -1, false});
      return;
    }
  }
}

void bpe_word(const State& st, const std::string& word, std::vector<int>& ids) {
  if (word.empty()) return;
  if (st.ignore_merges) {
    const auto it = st.vocab.find(word);
    if (it != st.vocab.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  std::vector<int> sym;
  for (size_t i = 0; i < word.size();) {
    uint32_t cp = 0;
    const size_t n = utf8_next(word, i, &cp);
    const std::string ch = word.substr(i, n);
    i += n;
    const auto it = st.vocab.find(ch);
    if (it != st.vocab.end()) {
      sym.push_back(it->second);
      continue;
    }
    if (st.byte_fallback) {
      std::vector<int> bytes;
      for (unsigned char c : ch) {
        static const char* hex = "0123456789ABCDEF";
        const std::string name = std::string("<0x") + hex[c >> 4] + hex[c & 15] + ">";
        const auto b = st.vocab.find(name);
        if (b == st.vocab.end()) break;
        bytes.push_back(b->second);
      }
      if (bytes.size() == ch.size()) {
        sym.insert(sym.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (st.unk_id >= 0) {
      if (!(st.fuse_unk && !sym.empty() && sym.back() == st.unk_id)) sym.push_back(st.unk_id);
    }
    // Without an unk token the character is dropped, as tokenizers does.
  }
  // Apply the lowest-ranked merge present (the leftmost on ties) until none applies, with a
  // linked list of symbols and a heap of candidate pairs (stale entries are skipped), as
  // tokenizers does.
  const size_t n = sym.size();
  std::vector<size_t> next(n), prev(n);
  std::vector<bool> alive(n, true);
  for (size_t k = 0; k < n; ++k) {
    next[k] = k + 1;
    prev[k] = k - 1;  // wraps for k = 0; never read there
  }
  struct Cand {
    int rank;
    size_t left, right;
    int left_id, right_id, merged;
  };
  const auto worse = [](const Cand& a, const Cand& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  const auto push = [&](size_t left, size_t right) {
    const auto it = st.merges.find(State::key(sym[left], sym[right]));
    if (it != st.merges.end()) {
      heap.push({it->second.first, left, right, sym[left], sym[right], it->second.second});
    }
  };
  for (size_t k = 0; k + 1 < n; ++k) push(k, k + 1);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right || sym[c.left] != c.left_id ||
        sym[c.right] != c.right_id) {
      continue;
    }
    sym[c.left] = c.merged;
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.left] < n) prev[next[c.left]] = c.left;
    if (c.left > 0) push(prev[c.left], c.left);
    if (next[c.left] < n) push(c.left, next[c.left]);
  }
  for (size_t k = 0; k < n; ++k) {
    if (alive[k]) ids.push_back(sym[k]);
  }
}

}  // namespace

HfTokenizer HfTokenizer::from_json_text(std::string_view text, const std::string& source) {
  auto st = std::make_shared<State>();
  st->source = source;
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail(source, "(contents)", "is not valid JSON");
  if (!j.is_object()) st->bad("top level", short_dump(j), "must be a JSON object");
  if (!j.contains("model")) st->bad("model", "absent", "tokenizer.json needs a \"model\" object");
  parse_model(*st, j["model"]);
  parse_added(*st, j.value("added_tokens", json()));
  parse_normalizer(*st, j.value("normalizer", json()), "normalizer");
  parse_pre_tokenizer(*st, j.value("pre_tokenizer", json()), "pre_tokenizer");
  parse_decoder(*st, j.value("decoder", json()), "decoder");
  choose_bos_eos(*st, j.value("post_processor", json()));
  HfTokenizer t;
  t.s_ = std::move(st);
  return t;
}

HfTokenizer HfTokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("--tokenizer", path, "cannot open the file for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path);
}

std::vector<int> HfTokenizer::encode(std::string_view text, bool add_bos) const {
  const State& st = *s_;
  std::vector<int> ids;
  if (add_bos) {
    if (st.bos < 0) st.bad("BOS token", "none", "the tokenizer has no BOS token to add");
    ids.push_back(st.bos);
  }
  for (const Piece& raw : split_added(st, std::string(text), false, true)) {
    if (raw.added_id >= 0) {
      ids.push_back(raw.added_id);
      continue;
    }
    for (const Piece& seg : split_added(st, normalize(st, raw.text), true, raw.at_start)) {
      if (seg.added_id >= 0) {
        ids.push_back(seg.added_id);
        continue;
      }
      std::vector<Piece> words{seg};
      for (const State::Pre& p : st.pre_tokenizers) {
        std::vector<Piece> next;
        for (const Piece& w : words) apply_pre(p, w, next);
        words = std::move(next);
      }
      for (const Piece& w : words) bpe_word(st, w.text, ids);
    }
  }
  return ids;
}

std::string HfTokenizer::decode_token(int id) const {
  const State& st = *s_;
  if (id < 0 || id >= vocab_size()) {
    fail("token id", std::to_string(id), "must be in [0, " + std::to_string(vocab_size()) + ")");
  }
  if (id == st.bos || id == st.eos) return {};
  std::string s = st.tokens[static_cast<size_t>(id)];
  if (st.added_by_id.count(id) != 0) return s;
  for (const State::Dec& d : st.decoders) {
    switch (d.kind) {
      case State::Dec::ByteLevel: {
        std::string out;
        for (size_t i = 0; i < s.size();) {
          uint32_t cp = 0;
          const size_t n = utf8_next(s, i, &cp);
          const auto it = byte_map().from_cp.find(cp);
          if (it != byte_map().from_cp.end()) {
            out += static_cast<char>(it->second);
          } else {
            out.append(s, i, n);
          }
          i += n;
        }
        s = std::move(out);
        break;
      }
      case State::Dec::Replace:
        replace_all(s, d.a, d.b);
        break;
      case State::Dec::ByteFallback: {
        const int b = parse_byte_token(s);
        if (b >= 0) s = std::string(1, static_cast<char>(b));
        break;
      }
      case State::Dec::Metaspace:
        replace_all(s, d.a, " ");
        break;
      case State::Dec::Strip:
        break;  // applied by decode() at the start of the text
    }
  }
  return s;
}

std::string HfTokenizer::decode(const std::vector<int>& ids) const {
  const State& st = *s_;
  int strip = 0;  // leading spaces the decoder strips at the start of the text
  std::string strip_char = " ";
  for (const State::Dec& d : st.decoders) {
    if (d.kind == State::Dec::Strip) {
      strip = d.start;
      strip_char = d.a;
    } else if (d.kind == State::Dec::Metaspace) {
      strip = d.start;
    }
  }
  std::string text;
  bool at_start = true;
  for (int id : ids) {
    std::string s = decode_token(id);
    if (id == st.bos) {
      at_start = true;
      continue;
    }
    if (id == st.eos) continue;
    if (at_start && st.added_by_id.count(id) == 0) {
      for (int k = 0;
           k < strip && !strip_char.empty() && s.compare(0, strip_char.size(), strip_char) == 0;
           ++k) {
        s.erase(0, strip_char.size());
      }
    }
    at_start = false;
    text += s;
  }
  return text;
}

int HfTokenizer::vocab_size() const {
  return static_cast<int>(s_->tokens.size());
}
int HfTokenizer::bos_id() const {
  return s_->bos;
}
int HfTokenizer::eos_id() const {
  return s_->eos;
}
std::string HfTokenizer::name() const {
  return s_->byte_level ? "hf-bpe-bytelevel" : "hf-bpe-sentencepiece";
}

}  // namespace kvlab
