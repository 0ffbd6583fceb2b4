"""The synthetic marketplace's catalogue: a Mercari-like category tree and the brands sold in it.

Numbers are log-price effects. Base prices per middle category are rough medians of what such
items fetch second-hand; they only need to be plausible and to give the model signal to learn.
"""

from __future__ import annotations

# top -> {middle: (median price in USD, [leaves])}
CATEGORY_TREE: dict[str, dict[str, tuple[float, list[str]]]] = {
    "Women": {
        "Tops & Blouses": (14, ["T-Shirts", "Blouse", "Tank, Cami", "Tunic", "Button Down Shirt"]),
        "Athletic Apparel": (22, ["Pants, Tights, Leggings", "Shorts", "Sports Bras", "Jackets", "Shirts & Tops"]),
        "Shoes": (30, ["Boots", "Sandals", "Athletic", "Flats", "Heels", "Fashion Sneakers"]),
        "Jewelry": (18, ["Necklaces", "Bracelets", "Earrings", "Rings", "Watches"]),
        "Women's Handbags": (38, ["Shoulder Bag", "Totes & Shoppers", "Cross-Body", "Backpack Style"]),
        "Women's Accessories": (16, ["Wallets", "Sunglasses", "Scarves & Wraps", "Hats"]),
        "Dresses": (22, ["Above Knee, Mini", "Knee-Length", "Maxi"]),
        "Underwear": (14, ["Bras", "Panties", "Shapewear"]),
        "Sweaters": (20, ["Cardigan", "Hooded", "Crewneck"]),
        "Jeans": (22, ["Slim, Skinny", "Boot Cut", "Straight Leg"]),
        "Swimwear": (18, ["Two-Piece", "One-Piece", "Cover-Ups"]),
        "Coats & Jackets": (40, ["Parka", "Vest", "Jean Jacket"]),
    },
    "Beauty": {
        "Makeup": (14, ["Lips", "Face", "Eyes", "Makeup Palettes", "Nails"]),
        "Skin Care": (18, ["Face", "Body", "Maskss"]),
        "Fragrance": (32, ["Women", "Men"]),
        "Hair Care": (12, ["Styling Products", "Shampoo & Conditioner", "Hair Color"]),
        "Tools & Accessories": (16, ["Makeup Brushes & Tools", "Bags & Cases", "Hair Styling Tools"]),
    },
    "Kids": {
        "Toys": (
            16,
            [
                "Dolls & Accessories",
                "Action Figures & Statues",
                "Stuffed Animals & Plush",
                "Learning & Education",
                "Building Toys",
            ],
        ),
        "Girls 2T-5T": (12, ["Tops & T-Shirts", "Dresses", "Shoes"]),
        "Boys 2T-5T": (12, ["Tops & T-Shirts", "Bottoms", "Shoes"]),
        "Girls 0-24 Mos": (11, ["One-Pieces", "Dresses", "Other"]),
        "Gear": (45, ["Strollers", "Car Seats", "Backpacks & Carriers"]),
    },
    "Electronics": {
        "Cell Phones & Accessories": (
            12,
            ["Cases, Covers & Skins", "Chargers & Cradles", "Headsets", "Cell Phones & Smartphones"],
        ),
        "Video Games & Consoles": (28, ["Games", "Consoles", "Accessories"]),
        "Computers & Tablets": (75, ["Laptops & Netbooks", "iPad, Tablet, eBook Readers", "Components & Parts"]),
        "Cameras & Photography": (80, ["Digital Cameras", "Lenses & Filters", "Film Photography"]),
        "TV, Audio & Surveillance": (45, ["Headphones", "Speakers", "Home Audio"]),
    },
    "Men": {
        "Tops": (16, ["T-shirts", "Casual Button-Down Shirts", "Hoodie", "Polo, Rugby", "Sweatshirt"]),
        "Shoes": (45, ["Athletic", "Boots", "Fashion Sneakers", "Outdoor"]),
        "Athletic Apparel": (20, ["Shorts", "Pants", "Jackets"]),
        "Bottoms": (22, ["Jeans", "Shorts", "Pants"]),
        "Coats & Jackets": (45, ["Lightweight", "Puffer", "Fleece Jacket"]),
    },
    "Home": {
        "Home Décor": (16, ["Candles", "Home Décor Accents", "Frames", "Wall Decor"]),
        "Kitchen & Dining": (20, ["Coffee & Tea Accessories", "Dining & Entertaining", "Small Appliances"]),
        "Bedding": (24, ["Quilts", "Sheets", "Blankets"]),
        "Storage & Organization": (15, ["Jewelry Boxes & Organizers", "Baskets & Bins"]),
    },
    "Vintage & Collectibles": {
        "Trading Cards": (14, ["Sports", "Collectible Card Games"]),
        "Collectibles": (18, ["Figurines", "Comic Books", "Pins"]),
        "Toy": (16, ["Action Figure", "Doll"]),
        "Electronics": (30, ["Video Games", "Cameras"]),
    },
    "Other": {
        "Office supplies": (10, ["Writing", "Shipping Supplies"]),
        "Books": (10, ["Children's Books", "Literature & Fiction"]),
        "Pet Supplies": (14, ["Dogs", "Cats"]),
    },
    "Handmade": {
        "Jewelry": (12, ["Bracelets", "Necklaces", "Earrings"]),
        "Accessories": (10, ["Keychain", "Hair"]),
        "Paper Goods": (6, ["Stickers", "Planners"]),
    },
    "Sports & Outdoors": {
        "Exercise": (25, ["Fitness Technology", "Yoga & Pilates"]),
        "Outdoors": (28, ["Camping & Hiking", "Fishing"]),
        "Fan Shop": (18, ["NFL", "MLB", "NBA"]),
        "Team Sports": (20, ["Football", "Basketball"]),
    },
}

# Share of listings per top category (Mercari's train.tsv, rounded).
TOP_SHARES: dict[str, float] = {
    "Women": 0.45,
    "Beauty": 0.14,
    "Kids": 0.116,
    "Electronics": 0.083,
    "Men": 0.063,
    "Home": 0.046,
    "Vintage & Collectibles": 0.031,
    "Other": 0.030,
    "Handmade": 0.021,
    "Sports & Outdoors": 0.016,
}

# top -> [(brand, log-price premium, popularity)]
BRANDS: dict[str, list[tuple[str, float, float]]] = {
    "Women": [
        ("PINK", 0.1, 8),
        ("Victoria's Secret", 0.0, 7),
        ("LuLaRoe", 0.2, 6),
        ("Nike", 0.15, 8),
        ("Lululemon", 0.6, 4),
        ("Michael Kors", 0.6, 4),
        ("Coach", 0.7, 3),
        ("Kate Spade", 0.7, 2),
        ("Louis Vuitton", 2.0, 1),
        ("Tory Burch", 0.8, 1),
        ("Forever 21", -0.4, 4),
        ("American Eagle", -0.2, 3),
        ("Old Navy", -0.4, 3),
        ("Free People", 0.3, 2),
        ("Adidas", 0.1, 3),
        ("Under Armour", 0.0, 2),
        ("Tiffany & Co.", 1.6, 1),
        ("Pandora", 0.6, 1),
        ("UGG Australia", 0.8, 2),
        ("Converse", 0.2, 2),
        ("Vera Bradley", 0.2, 2),
        ("Torrid", 0.0, 2),
    ],
    "Beauty": [
        ("MAC", 0.2, 4),
        ("Sephora", 0.1, 3),
        ("Urban Decay", 0.4, 3),
        ("Too Faced", 0.4, 3),
        ("Anastasia Beverly Hills", 0.4, 3),
        ("Bath & Body Works", -0.1, 5),
        ("Clinique", 0.3, 2),
        ("Benefit", 0.3, 2),
        ("NYX", -0.4, 3),
        ("e.l.f.", -0.6, 2),
        ("Kylie Cosmetics", 0.5, 3),
        ("Chanel", 1.1, 1),
    ],
    "Kids": [
        ("Carter's", -0.3, 4),
        ("Disney", 0.0, 4),
        ("Nike", 0.1, 2),
        ("Gymboree", -0.1, 2),
        ("Barbie", 0.1, 2),
        ("LEGO", 0.7, 3),
        ("Fisher-Price", 0.0, 2),
        ("Funko", -0.1, 3),
        ("Hatchimals", 0.5, 1),
        ("Graco", 0.8, 1),
    ],
    "Electronics": [
        ("Apple", 1.2, 6),
        ("Samsung", 0.6, 3),
        ("Sony", 0.7, 3),
        ("Nintendo", 0.8, 4),
        ("Xbox", 0.7, 2),
        ("Beats", 0.8, 2),
        ("OtterBox", -0.2, 2),
        ("Bose", 1.0, 1),
        ("Canon", 1.1, 1),
        ("Fitbit", 0.5, 1),
        ("Microsoft", 0.6, 1),
        ("LG", 0.4, 1),
    ],
    "Men": [
        ("Nike", 0.2, 6),
        ("Adidas", 0.15, 3),
        ("Under Armour", 0.0, 2),
        ("Polo Ralph Lauren", 0.3, 2),
        ("Levi's", 0.0, 2),
        ("The North Face", 0.8, 2),
        ("Air Jordan", 1.0, 2),
        ("Supreme", 1.1, 1),
        ("Hollister", -0.3, 1),
        ("Columbia", 0.3, 1),
        ("Vans", 0.1, 2),
    ],
    "Home": [
        ("Pottery Barn", 0.5, 1),
        ("Bath & Body Works", 0.0, 3),
        ("Keurig", 0.8, 1),
        ("Yankee Candle", -0.1, 2),
        ("Pyrex", 0.0, 1),
        ("KitchenAid", 1.2, 1),
        ("Rae Dunn", 0.3, 2),
    ],
    "Vintage & Collectibles": [
        ("Pokemon", 0.3, 3),
        ("Funko", 0.0, 2),
        ("Disney", 0.2, 2),
        ("Hot Wheels", -0.2, 1),
        ("Marvel", 0.2, 1),
        ("Topps", 0.0, 1),
        ("Panini", 0.1, 1),
    ],
    "Other": [("Scholastic", -0.3, 1), ("Sharpie", -0.4, 1), ("KONG", 0.0, 1)],
    "Handmade": [("Handmade", 0.0, 1)],
    "Sports & Outdoors": [
        ("Nike", 0.1, 2),
        ("Fitbit", 0.7, 2),
        ("Under Armour", 0.0, 1),
        ("Coleman", 0.3, 1),
        ("YETI", 0.9, 1),
        ("Garmin", 1.2, 1),
        ("Wilson", 0.2, 1),
    ],
}

# brand -> [(model words, log-price premium)]
MODELS: dict[str, list[tuple[str, float]]] = {
    "Apple": [
        ("iPhone 6", 0.3),
        ("iPhone 7 Plus", 0.8),
        ("iPhone X", 1.2),
        ("iPad Air", 0.9),
        ("AirPods", 0.6),
        ("MacBook Pro", 1.8),
        ("Apple Watch", 0.9),
    ],
    "Samsung": [("Galaxy S8", 0.8), ("Galaxy Note", 0.9), ("Galaxy Tab", 0.5)],
    "Nintendo": [("Switch", 1.2), ("3DS XL", 0.5), ("Mario Kart", -0.3), ("Zelda", -0.2)],
    "Sony": [("PS4", 1.0), ("PS4 Pro", 1.3), ("PlayStation VR", 1.1)],
    "Xbox": [("Xbox One", 1.0), ("Xbox One S", 1.1), ("controller", -0.2)],
    "Beats": [("Solo 3", 0.4), ("Studio", 0.6), ("Powerbeats", 0.2)],
    "Nike": [("Air Max", 0.4), ("Dri-FIT", -0.1), ("Roshe", 0.1), ("Free Run", 0.2), ("Flyknit", 0.4)],
    "Air Jordan": [("Retro 11", 0.5), ("Retro 1", 0.4), ("Jordan 4", 0.4)],
    "Lululemon": [("Align", 0.2), ("Wunder Under", 0.1), ("Define jacket", 0.4)],
    "Michael Kors": [("Jet Set", 0.2), ("Selma", 0.4), ("Hamilton", 0.3)],
    "Coach": [("Signature", 0.1), ("Madison", 0.3)],
    "Louis Vuitton": [("Neverfull", 0.4), ("Speedy 30", 0.3), ("Damier", 0.2)],
    "Kylie Cosmetics": [("Lip Kit", 0.0), ("Kyshadow", 0.1)],
    "Urban Decay": [("Naked palette", 0.3), ("Naked Heat", 0.3)],
    "Anastasia Beverly Hills": [("Modern Renaissance", 0.3), ("Dipbrow", -0.2)],
    "LEGO": [("Star Wars", 0.4), ("Friends", 0.0), ("Technic", 0.5)],
    "Pokemon": [("Charizard", 0.8), ("booster box", 1.0), ("holo", 0.3)],
    "Funko": [("Pop", 0.0), ("Pop exclusive", 0.4)],
    "UGG Australia": [("Classic Short", 0.2), ("Bailey Bow", 0.3)],
    "The North Face": [("Denali", 0.3), ("Nuptse", 0.5)],
    "Supreme": [("box logo", 0.6)],
    "PINK": [("Wear Everywhere", 0.0), ("campus", -0.1)],
    "Victoria's Secret": [("bombshell", 0.1), ("push up", 0.0)],
    "Fitbit": [("Charge 2", 0.2), ("Alta HR", 0.2), ("Ionic", 0.6)],
    "Keurig": [("K-Cup", -0.6), ("K55", 0.3)],
}

CONDITION_EFFECT = {1: 0.0, 2: 0.0, 3: 0.0, 4: -0.15, 5: -0.35}
CONDITION_SHARES = {1: 0.432, 2: 0.253, 3: 0.291, 4: 0.022, 5: 0.002}
SELLER_PAYS_EFFECT = -0.32

# Drifted markets: what a shifted batch brings that the reference market never had.
NEW_CATEGORIES: dict[str, tuple[float, list[str]]] = {
    "Electronics/Smart Home": (60, ["Smart Speakers", "Smart Plugs", "Security Cameras"]),
    "Electronics/Wearables": (90, ["VR Headsets", "Smart Rings"]),
    "Women/Resale Luxury": (180, ["Designer Belts", "Designer Sneakers"]),
    "Sports & Outdoors/Pickleball": (45, ["Paddles", "Balls & Nets"]),
    "Home/Drinkware": (28, ["Tumblers", "Water Bottles"]),
}
NEW_BRANDS: list[tuple[str, float, float]] = [
    ("Stanley", 0.5, 4),
    ("Owala", 0.2, 2),
    ("Skims", 0.4, 3),
    ("Shein", -0.7, 5),
    ("Hoka", 0.6, 2),
    ("On Running", 0.6, 2),
    ("Meta Quest", 1.5, 1),
    ("Jellycat", 0.3, 2),
]
