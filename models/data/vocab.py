"""Fixed vocabularies of the generators (pure data): plate provinces, ethnic groups, a sample of real
administrative division codes (GB/T 2260), names, and the printed labels of ID cards and VIN plates."""
from __future__ import annotations

# The 31 mainland province-level abbreviations used as the first character of a plate (GA 36).
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Last-character markers of special plates drawn by plate.py: police (white) and driving-school (yellow).
PLATE_SPECIAL = "警学"

# The 56 officially recognized ethnic groups as printed after 民族 on the ID card (without the 族 suffix).
ETHNIC_GROUPS = (
    "汉 蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳 佤 畲 高山 拉祜 水 东乡 纳西 "
    "景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 普米 塔吉克 怒 乌孜别克 俄罗斯 鄂温克 德昂 "
    "保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 基诺").split()

# (6-digit county-level code, province part, city part, district) — a hand-picked sample of real
# GB/T 2260 codes, two-ish per province-level division. It makes ID numbers and addresses agree; it is
# not an authority on current boundaries. Municipalities have an empty city part.
REGIONS = [
    ("110101", "北京市", "", "东城区"), ("110102", "北京市", "", "西城区"), ("110105", "北京市", "", "朝阳区"),
    ("110106", "北京市", "", "丰台区"), ("110108", "北京市", "", "海淀区"),
    ("120101", "天津市", "", "和平区"), ("120102", "天津市", "", "河东区"), ("120103", "天津市", "", "河西区"),
    ("130102", "河北省", "石家庄市", "长安区"), ("130104", "河北省", "石家庄市", "桥西区"),
    ("140105", "山西省", "太原市", "小店区"), ("140106", "山西省", "太原市", "迎泽区"),
    ("150102", "内蒙古自治区", "呼和浩特市", "新城区"), ("150103", "内蒙古自治区", "呼和浩特市", "回民区"),
    ("210102", "辽宁省", "沈阳市", "和平区"), ("210103", "辽宁省", "沈阳市", "沈河区"),
    ("220102", "吉林省", "长春市", "南关区"), ("220104", "吉林省", "长春市", "朝阳区"),
    ("230102", "黑龙江省", "哈尔滨市", "道里区"), ("230103", "黑龙江省", "哈尔滨市", "南岗区"),
    ("310101", "上海市", "", "黄浦区"), ("310104", "上海市", "", "徐汇区"), ("310105", "上海市", "", "长宁区"),
    ("310115", "上海市", "", "浦东新区"),
    ("320102", "江苏省", "南京市", "玄武区"), ("320106", "江苏省", "南京市", "鼓楼区"),
    ("330102", "浙江省", "杭州市", "上城区"), ("330106", "浙江省", "杭州市", "西湖区"),
    ("340102", "安徽省", "合肥市", "瑶海区"), ("340104", "安徽省", "合肥市", "蜀山区"),
    ("350102", "福建省", "福州市", "鼓楼区"), ("350203", "福建省", "厦门市", "思明区"),
    ("360102", "江西省", "南昌市", "东湖区"), ("360103", "江西省", "南昌市", "西湖区"),
    ("370102", "山东省", "济南市", "历下区"), ("370202", "山东省", "青岛市", "市南区"),
    ("410102", "河南省", "郑州市", "中原区"), ("410105", "河南省", "郑州市", "金水区"),
    ("420102", "湖北省", "武汉市", "江岸区"), ("420106", "湖北省", "武汉市", "武昌区"),
    ("430102", "湖南省", "长沙市", "芙蓉区"), ("430104", "湖南省", "长沙市", "岳麓区"),
    ("440103", "广东省", "广州市", "荔湾区"), ("440106", "广东省", "广州市", "天河区"),
    ("440304", "广东省", "深圳市", "福田区"), ("440305", "广东省", "深圳市", "南山区"),
    ("450102", "广西壮族自治区", "南宁市", "兴宁区"), ("450103", "广西壮族自治区", "南宁市", "青秀区"),
    ("460105", "海南省", "海口市", "秀英区"), ("460106", "海南省", "海口市", "龙华区"),
    ("500103", "重庆市", "", "渝中区"), ("500106", "重庆市", "", "沙坪坝区"),
    ("510104", "四川省", "成都市", "锦江区"), ("510107", "四川省", "成都市", "武侯区"),
    ("520102", "贵州省", "贵阳市", "南明区"), ("520103", "贵州省", "贵阳市", "云岩区"),
    ("530102", "云南省", "昆明市", "五华区"), ("530103", "云南省", "昆明市", "盘龙区"),
    ("540102", "西藏自治区", "拉萨市", "城关区"),
    ("610102", "陕西省", "西安市", "新城区"), ("610113", "陕西省", "西安市", "雁塔区"),
    ("620102", "甘肃省", "兰州市", "城关区"),
    ("630102", "青海省", "西宁市", "城东区"),
    ("640104", "宁夏回族自治区", "银川市", "兴庆区"),
    ("650102", "新疆维吾尔自治区", "乌鲁木齐市", "天山区"), ("650103", "新疆维吾尔自治区", "乌鲁木齐市", "沙依巴克区"),
]

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
            "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
COMPOUND_SURNAMES = ["欧阳", "司马", "诸葛", "上官", "东方", "慕容", "令狐", "皇甫"]
GIVEN_NAME_CHARS = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志红玉萍文辉鹏飞宇浩然欣怡晨子涵梓轩"
                    "雨佳琪思彤博文婷雪梅海燕丹玲亮成荣健林波斌宁凯俊峰亚春雷晶慧颖倩晓东新鑫宏")
STREET_SUFFIXES = ["路", "街", "大道", "巷", "胡同", "大街", "中路", "北路", "南路", "东路", "西路"]

ID_LABELS = ["姓名", "性别", "民族", "出生", "住址", "公民身份号码"]
ID_DATE_UNITS = "年月日"
ID_SEXES = "男女"
ADDRESS_WORDS = ["小区", "号楼", "单元", "室", "栋", "村", "组", "号", "弄", "花园", "公寓", "新村", "社区", "大厦", "层"]

VIN_LABELS = ["车辆识别代号", "制造年月", "品牌", "整车型号", "发动机型号", "发动机排量", "最大允许总质量",
              "乘坐人数", "制造国", "中国", "制造商", "有限公司", "汽车"]

CARD_BANKS_ZH = ["中国银行", "工商银行", "建设银行", "农业银行", "交通银行", "招商银行", "民生银行", "兴业银行",
                 "浦发银行", "光大银行", "华夏银行", "平安银行", "邮政储蓄银行", "北京银行", "上海银行"]
CARD_BANKS_EN = ["BANK OF ASIA", "UNITED CREDIT", "GLOBAL BANK", "SUMMIT BANK", "PACIFIC TRUST", "NORTHSTAR",
                 "CITY SAVINGS", "HARBOR BANK", "EASTERN UNION", "GOLDEN GATE", "SILK ROAD BANK", "METRO CREDIT"]
CARD_TIERS = ["DEBIT", "CREDIT", "PLATINUM", "GOLD", "CLASSIC", "WORLD", "SIGNATURE", "BUSINESS", "INFINITE"]

PINYIN_SURNAMES = ["WANG", "LI", "ZHANG", "LIU", "CHEN", "YANG", "HUANG", "ZHAO", "WU", "ZHOU", "XU", "SUN", "MA",
                   "ZHU", "HU", "GUO", "HE", "GAO", "LIN", "LUO", "ZHENG", "LIANG", "XIE", "SONG", "TANG", "HAN"]
PINYIN_GIVEN = ["WEI", "FANG", "NA", "XIU", "YING", "MIN", "JING", "LI", "QIANG", "LEI", "JUN", "YANG", "YONG",
                "YAN", "JIE", "JUAN", "TAO", "MING", "CHAO", "XIA", "PING", "GANG", "HUA", "JIAN", "GUO", "HONG",
                "YU", "HAO", "RAN", "XIN", "YI", "CHEN", "ZI", "HAN", "XUAN", "TING", "XUE", "MEI", "DAN", "BO"]
WESTERN_FIRST = ["JOHN", "MARY", "JAMES", "ANNA", "DAVID", "SARAH", "MICHAEL", "LAURA", "PETER", "EMMA", "PAUL",
                 "ALICE", "THOMAS", "JULIA", "DANIEL", "MARIA", "KEVIN", "LINDA", "MARK", "SOPHIE"]
WESTERN_LAST = ["SMITH", "JOHNSON", "BROWN", "TAYLOR", "MILLER", "WILSON", "MOORE", "CLARK", "WALKER", "YOUNG",
                "KING", "WRIGHT", "LOPEZ", "HILL", "GREEN", "ADAMS", "BAKER", "NELSON", "CARTER", "MITCHELL"]

# Real world manufacturer identifiers (first 3 VIN characters) of common makes; only the look matters.
VIN_WMIS = ["LSV", "LFV", "LVS", "LBV", "LGB", "LVG", "LHG", "LFM", "LSG", "LDC", "LGW", "LZW", "WVW", "WBA",
            "WDD", "JHM", "JTD", "KMH", "1HG", "1FA", "2T1", "3VW", "5YJ", "VF1", "ZFA", "SAL", "YV1", "TMB"]


def vocabulary_chars() -> str:
    """Every Chinese character that the generators print from a fixed list (sorted, deduplicated)."""
    parts = [PROVINCES, PLATE_SPECIAL, "".join(ETHNIC_GROUPS), "族", SURNAMES, "".join(COMPOUND_SURNAMES),
             GIVEN_NAME_CHARS, "".join(STREET_SUFFIXES), "".join(ID_LABELS), ID_DATE_UNITS, ID_SEXES,
             "".join(ADDRESS_WORDS), "".join(VIN_LABELS), "".join(CARD_BANKS_ZH)]
    parts += ["".join(r[1:]) for r in REGIONS]
    return "".join(sorted({c for c in "".join(parts) if ord(c) >= 0x3400}))
