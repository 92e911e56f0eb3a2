package tasks

// words are common English words (lower case, 3 to 8 letters, all distinct)
// for the word tasks.
var words = []string{
	"apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "peach", "pear", "plum",
	"bread", "butter", "cheese", "honey", "milk", "rice", "salt", "sugar", "soup", "water",
	"table", "chair", "window", "door", "floor", "wall", "roof", "house", "garden", "kitchen",
	"river", "ocean", "mountain", "forest", "desert", "island", "valley", "lake", "hill", "field",
	"cat", "dog", "horse", "rabbit", "mouse", "tiger", "lion", "zebra", "monkey", "snake",
	"bird", "eagle", "owl", "duck", "goose", "fish", "shark", "whale", "frog", "turtle",
	"red", "blue", "green", "yellow", "purple", "black", "white", "brown", "silver", "gold",
	"book", "paper", "pencil", "letter", "story", "poem", "music", "song", "dance", "picture",
	"happy", "sad", "quick", "slow", "bright", "dark", "warm", "cold", "quiet", "loud",
	"morning", "evening", "night", "summer", "winter", "spring", "autumn", "today", "week", "year",
	"friend", "family", "mother", "father", "sister", "brother", "child", "people", "teacher", "doctor",
	"city", "village", "street", "road", "bridge", "market", "school", "church", "castle", "tower",
	"train", "plane", "boat", "ship", "truck", "bicycle", "wheel", "engine", "ticket", "station",
	"money", "coin", "price", "gift", "basket", "bottle", "glass", "plate", "spoon", "knife",
	"shirt", "jacket", "shoe", "hat", "dress", "pocket", "button", "ribbon", "sock", "glove",
	"cloud", "rain", "snow", "storm", "wind", "sun", "moon", "star", "planet", "sky",
	"stone", "sand", "metal", "wood", "iron", "copper", "candle", "flame", "smoke", "ash",
	"game", "ball", "puzzle", "kite", "doll", "drum", "flute", "guitar", "piano", "violin",
	"heart", "hand", "finger", "head", "mouth", "nose", "eye", "ear", "shoulder", "knee",
	"jump", "run", "walk", "swim", "sing", "read", "write", "think", "sleep", "laugh",
}
